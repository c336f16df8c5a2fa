"""A real Shibboleth SP 3 (Debian's `libapache2-mod-shib`: shibd and mod_shib in Apache) on a
free loopback port, configured from what docs/publishers.md tells a publisher's engineer.

The configuration is Debian's shipped `shibboleth2.xml` and `attribute-map.xml`, changed only
where the doc says (its `<SSO>` and `<MetadataProvider>` blocks, its attribute rules, read from
the doc itself), plus what a test needs and a real platform does not: its own folder for the
socket, logs and keys, an entity id on the test's host, and the Session handler showing values.
Apache serves it over https with a certificate of a throwaway CA (the broker's SOAP logout call
verifies it: the test hands the CA to the broker), and protects `/secure/` with a CGI script
that prints what the application receives.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from broker.certificates import write_pair
from tests.support.pki import make_pki

SHIBD = Path("/usr/sbin/shibd")
APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
SHIPPED = Path("/etc/shibboleth")
DEBIAN_PACKAGES = "apache2 libapache2-mod-shib"
PUBLISHERS_DOC = Path(__file__).resolve().parents[2] / "docs" / "publishers.md"
_START_SECONDS = 20.0

_APACHE_CONF = """\
ServerRoot /etc/apache2
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {home}/httpd.pid
ErrorLog {home}/logs/apache-error.log
LogLevel warn
TypesConfig /dev/null
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule mime_module {modules}/mod_mime.so
LoadModule alias_module {modules}/mod_alias.so
LoadModule cgid_module {modules}/mod_cgid.so
LoadModule socache_shmcb_module {modules}/mod_socache_shmcb.so
LoadModule ssl_module {modules}/mod_ssl.so
LoadModule mod_shib {modules}/mod_shib.so
ScriptSock {home}/cgid.sock
{user}
ShibConfig {home}/shibboleth2.xml
SSLEngine on
SSLCertificateFile {home}/tls/server.pem
ScriptAlias /secure/ {home}/cgi/
<Location /secure>
  AuthType shibboleth
  ShibRequestSetting requireSession 1
  Require shib-session
</Location>
<Location /Shibboleth.sso>
  SetHandler shib
</Location>
"""

_LOGGER = """\
log4j.rootCategory=INFO, log
log4j.appender.log=org.apache.log4j.FileAppender
log4j.appender.log.fileName={file}
log4j.appender.log.layout=org.apache.log4j.PatternLayout
log4j.appender.log.layout.ConversionPattern=%d{{%H:%M:%S}} %p %c %x: %m%n
"""

# What the application behind mod_shib sees: the request's environment, one variable a line.
_ENV_CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv | sort\n"


def missing() -> list[str]:
    """The programs this needs that are not installed here."""
    needed = [SHIBD, APACHE, MODULES / "mod_shib.so", MODULES / "mod_ssl.so"]
    return [str(path) for path in needed if not path.exists()]


def doc_blocks() -> list[str]:
    """The XML blocks of docs/publishers.md's Shibboleth SP notes, dedented, in order: the
    `<SSO>` element, the `<MetadataProvider>`, the attribute rules."""
    text = PUBLISHERS_DOC.read_text(encoding="utf-8")
    start = text.index("- **Shibboleth SP 3**")
    section = text[start : text.index("\n- **", start + 1)]
    return [textwrap.dedent(b) for b in re.findall(r"```xml\n(.*?)\n\s*```", section, re.S)]


@dataclass(frozen=True)
class ShibbolethSp:
    base_url: str  # https://localhost:PORT
    entity_id: str
    home: Path
    ca_file: Path  # the CA of its TLS certificate

    def metadata(self) -> str:
        """The metadata Shibboleth makes for itself (/Shibboleth.sso/Metadata)."""
        return self.get("/Shibboleth.sso/Metadata")

    def get(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(self.base_url + path, context=context, timeout=5) as answer:
            body: bytes = answer.read()
        return body.decode("utf-8")

    def log(self) -> str:
        return (self.home / "logs" / "shibd.log").read_text(encoding="utf-8", errors="replace")


def _shibboleth2(home: Path, entity_id: str, broker: str) -> str:
    """Debian's shipped shibboleth2.xml with the doc's blocks and the test's own paths."""
    sso, provider, _ = (block.replace("<base>", broker) for block in doc_blocks())
    xml = (SHIPPED / "shibboleth2.xml").read_text(encoding="utf-8")
    xml, found = re.subn(r"<SSO\b.*?</SSO>", sso, xml, count=1, flags=re.S)
    assert found == 1, "the shipped shibboleth2.xml has no <SSO> element"
    provider = provider.replace('backingFilePath="', f'backingFilePath="{home}/')
    xml = xml.replace("<AttributeExtractor ", provider + "\n        <AttributeExtractor ", 1)
    replacements = {
        'entityID="https://sp.example.org/shibboleth"': f'entityID="{entity_id}"',
        'path="attribute-map.xml"': f'path="{home}/attribute-map.xml"',
        'showAttributeValues="false"': 'showAttributeValues="true"',
        'key="sp-': f'key="{home}/sp-',
        'certificate="sp-': f'certificate="{home}/sp-',
        "<OutOfProcess ": f'<OutOfProcess logger="{home}/shibd.logger" ',
    }
    for old, new in replacements.items():
        assert old in xml, f"the shipped shibboleth2.xml has no {old}"
        xml = xml.replace(old, new)
    # The schema's order: OutOfProcess, InProcess, the listener.
    listener = (
        f'<InProcess logger="{home}/native.logger"/>\n'
        f'    <UnixListener address="{home}/shibd.sock"/>\n'
    )
    return re.sub(r"(<OutOfProcess\b[^>]*/>\n)", lambda m: m.group(1) + "    " + listener, xml)


def _attribute_map() -> str:
    """Debian's shipped attribute-map.xml with the doc's rules added before `</Attributes>`."""
    rules = textwrap.indent(doc_blocks()[2], "    ")
    xml = (SHIPPED / "attribute-map.xml").read_text(encoding="utf-8")
    return xml.replace("</Attributes>", rules + "\n</Attributes>")


def _write_config(home: Path, port: int, broker: str) -> ShibbolethSp:
    # Apache's children (as www-data when started by root) read shibboleth2.xml, run the CGI
    # script and reach shibd's socket: the folder must be theirs to enter. The private keys
    # stay 0600 (shibd and Apache's parent read them as the user who starts them).
    home.chmod(0o755)
    (home / "logs").mkdir()
    (home / "cgi").mkdir(mode=0o755)
    (home / "tls").mkdir()
    base_url = f"https://localhost:{port}"
    entity_id = f"{base_url}/shibboleth"
    for name in ("sp-signing", "sp-encrypt"):
        write_pair(home / f"{name}-key.pem", home / f"{name}-cert.pem", "localhost")
    pki = make_pki(home / "tls", "localhost")
    files = {
        "shibboleth2.xml": _shibboleth2(home, entity_id, broker),
        "attribute-map.xml": _attribute_map(),
        "shibd.logger": _LOGGER.format(file=home / "logs" / "shibd.log"),
        "native.logger": _LOGGER.format(file=home / "logs" / "native.log"),
        "cgi/env.cgi": _ENV_CGI,
        "httpd.conf": _APACHE_CONF.format(
            port=port,
            home=home,
            modules=MODULES,
            user="User www-data\nGroup www-data" if os.geteuid() == 0 else "",
        ),
    }
    for name, text in files.items():
        (home / name).write_text(text, encoding="utf-8")
    (home / "cgi" / "env.cgi").chmod(0o755)
    return ShibbolethSp(base_url, entity_id, home, pki.ca_file)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(sp: ShibbolethSp, processes: list[subprocess.Popen[bytes]]) -> None:
    """Until Apache answers the Status handler and shibd says the broker's metadata loaded."""
    deadline = time.monotonic() + _START_SECONDS
    last = ""
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} ended: {_logs(sp)}")
        try:
            status = sp.get("/Shibboleth.sso/Status")
        except OSError as err:
            last = repr(err)
        else:
            if "<OK/>" in status:
                return
            last = status
        time.sleep(0.2)
    raise RuntimeError(f"Shibboleth SP did not come up: {last}\n{_logs(sp)}")


def _logs(sp: ShibbolethSp) -> str:
    parts = []
    for name in ("shibd.console", "shibd.log", "apache-error.log"):
        path = sp.home / "logs" / name
        if path.exists():
            parts.append(f"--- {name}\n" + path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)[-6000:]


@contextmanager
def running_shibboleth_sp(port: int, broker: str) -> Iterator[ShibbolethSp]:
    """shibd and Apache with mod_shib on `port`, for the broker at `broker` (its metadata is
    fetched at start: the broker must be serving). In a folder of its own under the system's
    temporary folder (pytest's are closed to Apache's children), removed afterwards."""
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kb-shibboleth-")))
        sp = _write_config(home, port, broker)
        console = stack.enter_context((home / "logs" / "shibd.console").open("wb"))
        shibd = subprocess.Popen(
            [str(SHIBD), "-f", "-F", "-c", str(home / "shibboleth2.xml")],
            stdout=console,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, shibd)
        apache = subprocess.Popen(
            [str(APACHE), "-f", str(home / "httpd.conf"), "-D", "FOREGROUND"],
            stdout=console,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, apache)
        _wait_until_up(sp, [shibd, apache])
        yield sp
