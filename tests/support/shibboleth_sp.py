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

import re
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from broker.certificates import write_pair
from tests.support import apache

SHIBD = Path("/usr/sbin/shibd")
SHIPPED = Path("/etc/shibboleth")
DEBIAN_PACKAGES = "apache2 libapache2-mod-shib"
PUBLISHERS_DOC = Path(__file__).resolve().parents[2] / "docs" / "publishers.md"

_APACHE_REST = """\
LoadModule cgid_module {modules}/mod_cgid.so
LoadModule mod_shib {modules}/mod_shib.so
ScriptSock {home}/cgid.sock
ShibConfig {home}/shibboleth2.xml
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
    return [str(SHIBD)] * (not SHIBD.exists()) + apache.missing("mod_shib.so")


def doc_blocks() -> list[str]:
    """The XML blocks of docs/publishers.md's Shibboleth SP notes, dedented, in order: the
    `<SSO>` element, the `<MetadataProvider>`, the attribute rules."""
    text = PUBLISHERS_DOC.read_text(encoding="utf-8")
    start = text.index("- **Shibboleth SP 3**")
    section = text[start : text.index("\n- **", start + 1)]
    return [textwrap.dedent(b) for b in re.findall(r"```xml\n(.*?)\n\s*```", section, re.S)]


@dataclass(frozen=True)
class ShibbolethSp:
    site: apache.Site
    entity_id: str

    @property
    def base_url(self) -> str:  # https://localhost:PORT
        return self.site.base_url

    @property
    def home(self) -> Path:
        return self.site.home

    @property
    def ca_file(self) -> Path:  # the CA of its TLS certificate
        return self.site.ca_file

    def metadata(self) -> str:
        """The metadata Shibboleth makes for itself (/Shibboleth.sso/Metadata)."""
        return self.get("/Shibboleth.sso/Metadata")

    def get(self, path: str) -> str:
        return self.site.get(path)

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


def _write_config(site: apache.Site, port: int, broker: str) -> ShibbolethSp:
    # Apache's children (as www-data when started by root) read shibboleth2.xml, run the CGI
    # script and reach shibd's socket. The private keys stay 0600 (shibd and Apache's parent
    # read them as the user who starts them).
    home = site.home
    (home / "cgi").mkdir(mode=0o755)
    entity_id = f"{site.base_url}/shibboleth"
    for name in ("sp-signing", "sp-encrypt"):
        write_pair(home / f"{name}-key.pem", home / f"{name}-cert.pem", "localhost")
    rest = _APACHE_REST.format(home=home, modules=apache.MODULES)
    files = {
        "shibboleth2.xml": _shibboleth2(home, entity_id, broker),
        "attribute-map.xml": _attribute_map(),
        "shibd.logger": _LOGGER.format(file=home / "logs" / "shibd.log"),
        "native.logger": _LOGGER.format(file=home / "logs" / "native.log"),
        "cgi/env.cgi": _ENV_CGI,
        "httpd.conf": apache.conf(site, port, rest),
    }
    for name, text in files.items():
        (home / name).write_text(text, encoding="utf-8")
    (home / "cgi" / "env.cgi").chmod(0o755)
    return ShibbolethSp(site, entity_id)


@contextmanager
def running_shibboleth_sp(port: int, broker: str) -> Iterator[ShibbolethSp]:
    """shibd and Apache with mod_shib on `port`, for the broker at `broker` (its metadata is
    fetched at start: the broker must be serving); stopped and removed afterwards. Up when
    Apache answers the Status handler and shibd says the broker's metadata loaded."""
    with ExitStack() as stack:
        site = stack.enter_context(apache.site_folder("kb-shibboleth-", port))
        sp = _write_config(site, port, broker)
        console = stack.enter_context((site.home / "logs" / "shibd.console").open("wb"))
        shibd = [str(SHIBD), "-f", "-F", "-c", str(site.home / "shibboleth2.xml")]
        processes = apache.start(stack, site, console, shibd)
        apache.wait_until_up(site, processes, "/Shibboleth.sso/Status", lambda s: "<OK/>" in s)
        yield sp
