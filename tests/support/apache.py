"""Debian's Apache 2.4 on a free loopback port, from a temporary folder of its own, over https
with a certificate of a throwaway CA: what the interop tests put a SAML product behind
(tests/support/shibboleth_sp.py, tests/support/simplesamlphp_idp.py).

Started as root (CI), its workers run as www-data: the folder is opened to them (0755), and what
they read must be theirs to read. The folder is under the system's temporary folder (pytest's are
closed to other users) and removed afterwards.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.pki import make_pki

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
_START_SECONDS = 20.0

# The modules every interop Apache loads; `mpm` is event, or prefork where mod_php (not thread
# safe) is loaded.
_BASE_CONF = """\
ServerRoot /etc/apache2
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {home}/httpd.pid
ErrorLog {home}/logs/apache-error.log
LogLevel warn
TypesConfig /dev/null
LoadModule mpm_{mpm}_module {modules}/mod_mpm_{mpm}.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule mime_module {modules}/mod_mime.so
LoadModule alias_module {modules}/mod_alias.so
LoadModule env_module {modules}/mod_env.so
LoadModule socache_shmcb_module {modules}/mod_socache_shmcb.so
LoadModule ssl_module {modules}/mod_ssl.so
{user}
SSLEngine on
SSLCertificateFile {home}/tls/server.pem
"""


@dataclass(frozen=True)
class Site:
    base_url: str  # https://localhost:PORT
    home: Path
    ca_file: Path  # the CA of its TLS certificate

    def get(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(self.base_url + path, context=context, timeout=5) as answer:
            body: bytes = answer.read()
        return body.decode("utf-8")

    def logs(self) -> str:
        """The tail of every log in its `logs` folder."""
        parts = [
            f"--- {path.name}\n" + path.read_text(encoding="utf-8", errors="replace")
            for path in sorted((self.home / "logs").iterdir())
            if path.is_file()
        ]
        return "\n".join(parts)[-6000:]


def missing(*modules: str) -> list[str]:
    """Apache and those of its modules (`mod_shib.so`, `libphp8.2.so`) not installed here."""
    needed = [APACHE, MODULES / "mod_ssl.so", *(MODULES / name for name in modules)]
    return [str(path) for path in needed if not path.exists()]


def conf(site: Site, port: int, rest: str, mpm: str = "event") -> str:
    """An httpd.conf for `site` on `port`: the base above, then `rest`."""
    user = "User www-data\nGroup www-data" if os.geteuid() == 0 else ""
    base = _BASE_CONF.format(port=port, home=site.home, modules=MODULES, mpm=mpm, user=user)
    return base + rest


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def site_folder(prefix: str, port: int) -> Iterator[Site]:
    """A temporary folder for a site on `port`, open to Apache's workers, with `logs` and the
    TLS certificate (`tls/server.pem`) of a throwaway CA for `localhost`."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        home = Path(name)
        home.chmod(0o755)
        (home / "logs").mkdir()
        (home / "tls").mkdir()
        pki = make_pki(home / "tls", "localhost")
        yield Site(f"https://localhost:{port}", home, pki.ca_file)


def start(
    stack: ExitStack, site: Site, console: IO[bytes], command: Sequence[str] = ()
) -> list[subprocess.Popen[bytes]]:
    """Apache on `site/httpd.conf`, after `command` (a daemon it talks to) where given; both
    stopped when `stack` closes."""
    processes = []
    commands = [list(command)] if command else []
    commands.append([str(APACHE), "-f", str(site.home / "httpd.conf"), "-D", "FOREGROUND"])
    for args in commands:
        # A process group of its own: prefork's Apache ends by signalling its whole group.
        process = subprocess.Popen(args, stdout=console, stderr=subprocess.STDOUT, process_group=0)
        stack.callback(stop, process)
        processes.append(process)
    return processes


def wait_until_up(
    site: Site, processes: list[subprocess.Popen[bytes]], path: str, ready: Callable[[str], bool]
) -> None:
    """Until `site` answers `path` with a page `ready` accepts."""
    deadline = time.monotonic() + _START_SECONDS
    last = ""
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} ended: {site.logs()}")
        try:
            page = site.get(path)
        except OSError as err:
            last = repr(err)
        else:
            if ready(page):
                return
            last = page[-2000:]
        time.sleep(0.2)
    raise RuntimeError(f"{site.base_url} did not come up: {last}\n{site.logs()}")
