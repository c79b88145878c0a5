"""Azure SQL through ODBC: the connection string, and whether the driver is there.

The string is built from parts, each value escaped as ODBC wants it: a
value with ``;``, ``{``, ``}``, ``=`` or surrounding spaces goes in braces,
with every ``}`` doubled. Without that, ``DB_PASSWORD='p;Database=master'``
would add a keyword of its own to the string. The string travels to pyodbc
whole, as ``odbc_connect`` in a URL made by ``sqlalchemy.URL.create``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ...settings import SettingsError

__all__ = [
    "ODBC_DRIVER_HELP",
    "azure_sql_url",
    "check_odbc_driver",
    "odbc_connection_string",
    "odbc_value",
    "parse_odbc",
]

ODBC_DRIVER_HELP = (
    "install Microsoft's ODBC driver (Debian package msodbcsql18 from Microsoft's "
    "repository, see https://learn.microsoft.com/sql/connect/odbc/linux-mac/"
    "installing-the-microsoft-odbc-driver-for-sql-server) or set DB_DRIVER to an installed one"
)
_LIBODBC_HELP = "install unixODBC (Debian: apt-get install unixodbc, which brings libodbc2)"
_SPECIAL = set(";{}=")


def odbc_value(value: str) -> str:
    """``value`` as it may stand after ``Keyword=`` in an ODBC connection string."""
    if value != value.strip() or _SPECIAL & set(value):
        return _braced(value)
    return value


def odbc_connection_string(parts: Mapping[str, str]) -> str:
    """``Key=value;`` for each part; the driver's name always in braces, as is usual."""
    return "".join(
        f"{key}={_braced(value) if key == 'Driver' else odbc_value(value)};"
        for key, value in parts.items()
    )


def _braced(value: str) -> str:
    return "{" + value.replace("}", "}}") + "}"


def parse_odbc(text: str) -> dict[str, str]:
    """The keywords of an ODBC connection string (braced values unescaped)."""
    parts: dict[str, str] = {}
    i = 0
    while i < len(text):
        key_end = text.index("=", i)
        key = text[i:key_end].strip()
        i = key_end + 1
        if text.startswith("{", i):
            value, i = [], i + 1
            while True:
                if text[i] == "}":
                    if text.startswith("}}", i):
                        value.append("}")
                        i += 2
                        continue
                    i += 1
                    break
                value.append(text[i])
                i += 1
            parts[key] = "".join(value)
            i = text.index(";", i) + 1 if ";" in text[i:] else len(text)
        else:
            end = text.find(";", i)
            end = len(text) if end < 0 else end
            parts[key] = text[i:end]
            i = end + 1
    return parts


def azure_sql_url(
    *,
    host: str,
    port: str,
    database: str,
    user: str,
    password: str,
    driver: str,
    auth: str,
    client_id: str,
    connect_timeout: float,
) -> sa.URL:
    """The ``mssql+pyodbc`` URL for Azure SQL, encrypted, with a login timeout.

    ``auth``: ``password`` (``user`` and ``password``), ``managed_identity``
    (ODBC 18's ``ActiveDirectoryMsi``; ``client_id`` picks a user-assigned
    identity) or ``default`` (no credentials in the string: the engine
    passes an access token when it connects).
    """
    seconds = str(max(1, round(connect_timeout)))
    parts = {
        "Driver": driver,
        "Server": f"tcp:{host},{port}",
        "Database": database,
    }
    if auth == "password":
        parts.update(Uid=user, Pwd=password)
    elif auth == "managed_identity":
        parts["Authentication"] = "ActiveDirectoryMsi"
        if client_id:
            parts["Uid"] = client_id
    parts.update(
        {
            "Encrypt": "yes",
            "TrustServerCertificate": "no",
            "Connection Timeout": seconds,  # the login timeout
        }
    )
    return sa.URL.create("mssql+pyodbc", query={"odbc_connect": odbc_connection_string(parts)})


def check_odbc_driver(url: sa.URL, setting: str) -> None:
    """Raise ``SettingsError`` naming what to install when pyodbc or the driver is missing."""
    try:
        pyodbc: Any = importlib.import_module("pyodbc")
    except ImportError as error:
        if "libodbc" in str(error) or "cannot open shared object" in str(error):
            raise SettingsError(f"{setting}: pyodbc cannot load libodbc; {_LIBODBC_HELP}") from None
        raise SettingsError(
            f"{setting}: the mssql+pyodbc driver is not installed: "
            "pip install 'pichat-trio[azure-sql]'"
        ) from None
    odbc = url.query.get("odbc_connect")
    driver = parse_odbc(odbc).get("Driver", "") if isinstance(odbc, str) else ""
    if not driver:
        driver_query = url.query.get("driver", "")
        driver = driver_query if isinstance(driver_query, str) else ""
    installed = list(pyodbc.drivers())
    if driver and not driver.startswith("/") and driver not in installed:
        listed = ", ".join(installed) or "none"
        raise SettingsError(
            f"{setting}: ODBC driver {driver!r} is not installed (installed: {listed}); "
            f"{ODBC_DRIVER_HELP}"
        )
