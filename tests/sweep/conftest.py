"""A throwaway PostgreSQL server for sweeps coordinated through Optuna's RDB storage.

`postgres_url` (session scope) starts a private server from the PostgreSQL binaries found on this machine
(`initdb`/`pg_ctl` on PATH, or under /usr/lib/postgresql/*/bin as Debian/Ubuntu install them), listening on
127.0.0.1 at a free port with trust authentication, creates the database `gradfit_test` and yields
`postgresql+psycopg2://gradfit@127.0.0.1:PORT/gradfit_test`. The server is stopped and its folder removed
at the end of the session. `make test` needs nothing else; .ci/run installs PostgreSQL where it can.

The tests using it are skipped (with the reason) where no server binaries or no psycopg2 are available, or
where the tests run as root and no unprivileged user can run the server (PostgreSQL refuses to run as root).
Any other failure to start the server is an error, not a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = "install PostgreSQL, e.g. `apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql`"
DB_USER = "gradfit"
DB_NAME = "gradfit_test"
# Unprivileged accounts to run the server as when the tests run as root, in order of preference.
SERVER_USERS = ("postgres", "nobody")


def _version_key(bindir: str) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in bindir).split()
    return tuple(int(d) for d in digits)


def find_pg_bindir() -> Path | None:
    """A folder holding both `initdb` and `pg_ctl` (of the same installation), or None."""
    candidates = []
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            candidates.append(os.path.dirname(os.path.realpath(found)))
    # Debian/Ubuntu keep the server binaries off PATH; RHEL-like systems under /usr/pgsql-N. Newest first.
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"):
        candidates += sorted(glob.glob(pattern), key=_version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, exe), os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return Path(bindir)
    return None


def _server_user() -> str | None:
    """The unprivileged account to run the server as (None: run as ourselves); skips where root has none."""
    if os.geteuid() != 0:
        return None
    if not shutil.which("runuser") and not shutil.which("su"):
        pytest.skip("PostgreSQL refuses to run as root, and neither `runuser` nor `su` is available to drop root")
    for user in SERVER_USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return user
    pytest.skip(f"PostgreSQL refuses to run as root, and none of the users {SERVER_USERS} exists to run it as")


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    if user is None:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    # `su` needs a shell: `nobody` usually has nologin, so name one.
    return ["su", "-s", "/bin/sh", user, "-c", shlex.join(argv)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL (psycopg2 driver) of database `gradfit_test` on a private PostgreSQL server."""
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 is not installed: `pip install psycopg2-binary` (in the `test` extra)")
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip(
            f"no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql: {INSTALL_HINT}"
        )
    user = _server_user()

    # Not pytest's tmp_path: its parent is private to root, and the server may run as another user.
    root = Path(tempfile.mkdtemp(prefix="gradfit-pg-"))
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    sockets.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # the user's PGHOST etc. stay out
    env["LC_ALL"] = "C"
    run = {"cwd": root, "env": env, "capture_output": True, "text": True}
    if user is not None:
        try:
            shutil.chown(root, user)
            shutil.chown(sockets, user)
        except OSError as err:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"PostgreSQL refuses to run as root, and the data folder cannot be given to {user!r}: {err}")

    pg_ctl = str(bindir / "pg_ctl")
    started = False
    try:
        initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", DB_USER, "-E", "UTF8", "--no-sync"]
        init = subprocess.run(_as_user(user, initdb), **run)
        if init.returncode != 0:
            pytest.fail(f"initdb ({bindir}, as {user or 'the current user'}) failed:\n{init.stdout}\n{init.stderr}")

        port = _free_port()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {sockets} -c fsync=off -c full_page_writes=off"
        start = subprocess.run(
            _as_user(user, [pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "30", "start"]), **run
        )
        if start.returncode != 0:
            pytest.fail(f"pg_ctl start failed ({bindir}):\n{start.stdout}\n{start.stderr}\n{_tail(log)}")
        started = True

        # pg_ctl -w already waited for the server; retry briefly in case TCP is a moment behind.
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=port, user=DB_USER, dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB_NAME}")
        conn.close()

        yield f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"
    finally:
        if started:
            subprocess.run(_as_user(user, [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), **run)
        shutil.rmtree(root, ignore_errors=True)
