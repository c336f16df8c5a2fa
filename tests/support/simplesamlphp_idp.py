"""A real SimpleSAMLphp 1.19 IdP (Debian's `simplesamlphp`, mod_php in Apache) on a free
loopback port, configured from what docs/schools.md tells a school.

Nothing system-wide changes: Apache points SimpleSAMLphp at a config folder of the test's own
(`SetEnv SIMPLESAMLPHP_CONFIG_DIR`), whose `config.php` is Debian's shipped one with the doc's
settings merged in, plus what a test needs and a real school does not: its own folders for
logs, sessions, keys and metadata, and `exampleauth:UserPass` with one student instead of the
school's directory. `saml20-idp-hosted.php` is the doc's block with that auth source.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from broker.certificates import write_pair
from tests.support import apache
from tests.support.doc_snippets import doc_snippet

SHIPPED = Path("/etc/simplesamlphp")
WWW = Path("/usr/share/simplesamlphp/www")
PHP_MODULE = "libphp8.2.so"
# The extensions Debian's package does not pull in (docs/schools.md).
PHP_EXTENSIONS = [Path(f"/etc/php/8.2/apache2/conf.d/20-{n}.ini") for n in ("dom", "mbstring")]
DEBIAN_PACKAGES = "apache2 simplesamlphp libapache2-mod-php php-xml php-mbstring"
SCHOOLS_DOC = Path(__file__).resolve().parents[2] / "docs" / "schools.md"
METADATA_PATH = "/simplesamlphp/saml2/idp/metadata.php"
AUTH_SOURCE = "example-userpass"

_APACHE_REST = """\
LoadModule php_module {modules}/{php}
AddType application/x-httpd-php .php
Alias /simplesamlphp {www}
<Directory {www}/>
  Require all granted
  SetEnv SIMPLESAMLPHP_CONFIG_DIR {home}/config
</Directory>
"""


@dataclass(frozen=True)
class Student:
    username: str
    password: str
    attributes: dict[str, list[str]]


def missing() -> list[str]:
    """The programs and files this needs that are not installed here."""
    absent = apache.missing(PHP_MODULE)
    return absent + [str(p) for p in (SHIPPED / "config.php", *PHP_EXTENSIONS) if not p.exists()]


@dataclass(frozen=True)
class SimpleSamlPhpIdp:
    site: apache.Site
    entity_id: str

    def metadata(self) -> str:
        return self.site.get(METADATA_PATH)


def _php(value: object) -> str:
    """A PHP literal of a str, a list of str or a dict of those."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(_php(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "[" + ", ".join(f"{_php(k)} => {_php(v)}" for k, v in value.items()) + "]"


def _write_config(site: apache.Site, port: int, sp_metadata: str, student: Student) -> None:
    home = site.home
    config = home / "config"
    for name in ("config", "config/metadata", "cert", "sessions", "tmp", "data"):
        (home / name).mkdir(mode=0o755, exist_ok=True)
    shutil.copytree(SHIPPED / "attributemap", config / "attributemap")
    settings = doc_snippet("php", "'enable.saml20-idp'", SCHOOLS_DOC)
    hosted = doc_snippet("php", "__DYNAMIC:1__", SCHOOLS_DOC)
    settings = settings.replace(
        "<a long random string, kept secret, never changed>", secrets.token_hex(16)
    ).replace(f"{SHIPPED}/", f"{config}/")
    hosted = hosted.replace("'school-accounts'", _php(AUTH_SOURCE))
    # The doc's settings over Debian's shipped config.php; then the test's own folders.
    own = {
        "certdir": f"{home}/cert/",
        "loggingdir": f"{home}/logs/",
        "datadir": f"{home}/data/",
        "tempdir": f"{home}/tmp",
        "metadatadir": f"{config}/metadata/",
        "attributenamemapdir": f"{config}/attributemap/",
        "session.phpsession.savepath": f"{home}/sessions",
        "logging.handler": "file",
        "auth.adminpassword": secrets.token_hex(16),
    }
    files = {
        "config/config.php": (
            f"<?php\nrequire {_php(str(SHIPPED / 'config.php'))};\n"
            f"$config = array_merge($config, [\n{settings}\n]);\n"
            f"$config = array_merge($config, {_php(own)});\n"
            "$config['logging.level'] = SimpleSAML\\Logger::INFO;\n"
            "$config['module.enable']['exampleauth'] = true;\n"
        ),
        "config/authsources.php": (
            "<?php\n$config = [\n"
            "    'admin' => ['core:AdminPassword'],\n"
            f"    {_php(AUTH_SOURCE)} => ['exampleauth:UserPass',\n"
            f"        {_php(student.username + ':' + student.password)} => "
            f"{_php(student.attributes)},\n    ],\n];\n"
        ),
        "config/metadata/saml20-idp-hosted.php": f"<?php\n{hosted}\n",
        "config/metadata/ketenbroker-sp.xml": sp_metadata,
        "httpd.conf": "",
    }
    for name, text in files.items():
        (home / name).write_text(text, encoding="utf-8")
    write_pair(home / "cert" / "idp.key", home / "cert" / "idp.crt", "localhost")
    rest = _APACHE_REST.format(modules=apache.MODULES, php=PHP_MODULE, www=WWW, home=home)
    conf = apache.conf(site, port, rest, mpm="prefork")
    (home / "httpd.conf").write_text(conf, encoding="utf-8")
    _open_to_workers(home)


def _open_to_workers(home: Path) -> None:
    """mod_php runs in Apache's workers (www-data when started as root): they read the config
    and the signing key, and write logs, sessions and temporary files. Only there, in a
    throwaway folder; a school keeps its key readable by the web server's user only."""
    if os.geteuid() != 0:
        return
    for path in [home, *home.rglob("*")]:
        shutil.chown(path, "www-data", "www-data")


@contextmanager
def running_simplesamlphp_idp(
    port: int, sp_metadata: str, student: Student
) -> Iterator[SimpleSamlPhpIdp]:
    """Apache with SimpleSAMLphp on `port`, its IdP serving `student`, the broker's SP metadata
    `sp_metadata` loaded as the doc says; stopped and removed afterwards."""
    with ExitStack() as stack:
        site = stack.enter_context(apache.site_folder("kb-simplesamlphp-", port))
        _write_config(site, port, sp_metadata, student)
        console = stack.enter_context((site.home / "logs" / "console").open("wb"))
        processes = apache.start(stack, site, console)
        apache.wait_until_up(
            site, processes, METADATA_PATH, lambda page: "IDPSSODescriptor" in page
        )
        yield SimpleSamlPhpIdp(site, site.base_url + METADATA_PATH)
