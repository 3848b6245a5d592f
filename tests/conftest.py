"""Shared fixtures and helpers for every test module (reuse these rather than making another copy).

Fixtures (session scope unless said otherwise; under pytest-xdist each worker process has its own):

- ``real_data_path``: ../shared/data/marketing_campaign.csv; skips the test when absent.
- ``sample_path``: the committed synthetic sample (data/synthetic_customers.tsv).
- ``trained``: (registry, version, model, meta) of one model trained on the sample. Read-only: a test that
  changes a registry copies it first (``copy_registry(trained[0].root, tmp_path / "models")``).
- ``warm_models``: a registry folder as a first start on the sample leaves it (v0001 active, views stored);
  ``start_server(models_from=warm_models)`` or ``copy_registry`` copies it, never change it in place.
- ``live_server``: one ``python app.py`` on a copy of ``warm_models``, shared by the browser tests.
- ``cdnow_trained_models`` / ``cdnow_cli_models``: a registry trained on the CDNOW order log by ``pipeline.train``
  (defaults) / by ``python -m core train --n-init 2``, made once per run (``made_once``); copy, never change.
- ``postgres_server``: one PostgreSQL server (initdb + pg_ctl in a temporary folder) per worker process, shared
  by the PostgreSQL modules (tests/test_postgres.py's ``server``); each module uses tables of its own.
- ``spark``: one local[2] Spark session per worker process, shared by every Spark test (a JVM costs seconds to
  a minute to start); ``python -m core ... --engine spark`` run in-process joins it (getOrCreate).
- ``spark_trained_sample``: the sample trained once by the CLI with the Spark engine (a Spark training costs
  half a minute), for test_spark_engine.py and test_postgres_spark.py.
- ``worker_br`` / ``shared_br``: one headless Chromium per worker process, reset between tests; a module opts
  in with ``@pytest.fixture def dash_br(shared_br): return shared_br``.

Helpers: ``free_port``, ``wait_http``, ``start_server`` (a real app.py or gunicorn process on a free port),
``procfile_command``, ``copy_registry``, ``made_once`` (a folder made once per run for all xdist workers),
``console_errors``.

Training a model, starting a server, Chromium or a Spark session costs seconds each: make it once per module
(``scope="module"``) or session and copy the result into each test's ``tmp_path`` when the test changes it.

Run order (``pytest_collection_modifyitems`` below): the modules known to take longest run first, so that
``scripts/test.sh``'s two pytest-xdist workers (``--dist loadfile``: a module stays on one worker, its
module fixtures made once) finish together instead of one waiting for the other's last long module. The Spark
tests (SPARK_MODULES and test_recipe's [spark] case) are one work unit (``pytest_xdist_make_scheduler`` below), so
they run on one worker and share its one Spark session instead of each worker starting a JVM; each test of
SPLIT_MODULES (the accessibility audit: minutes a mode) is a unit of its own, so both workers take some.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "marketing_campaign.csv"
SAMPLE = ROOT / "data" / "synthetic_customers.tsv"
CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"
# The test PostgreSQL server's user, password and database (``postgres_server``).
PG_USER, PG_PASSWORD, PG_DB = "slens", "s3cret-pw", "crm"

# Apps made in this process (test clients, request contexts) have no server socket to say where they listen:
# they count as a loopback server, as the quick start is. Servers started by tests set their own value
# (gunicorn.conf.py from its --bind, app.py from HOST), so this never decides for a real server.
os.environ.setdefault("SEGMENTLENS_LISTEN", "127.0.0.1:0")

if shutil.which("chromium") and "DASH_TEST_CHROMEPATH" not in os.environ:
    os.environ["DASH_TEST_CHROMEPATH"] = shutil.which("chromium")


def pytest_setup_options():
    """Chromium flags for this sandbox: headless as root, and no background calls to a network we lack."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in ("--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--window-size=1400,1000"):
        options.add_argument(flag)
    return options


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    """The shared real data set; tests using it skip when it is absent."""
    if not REAL_DATA.exists():
        pytest.skip(f"real data set not present at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def sample_path() -> Path:
    """The committed synthetic sample."""
    return SAMPLE


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_pg_owner(cmd: list[str]) -> list[str]:
    # initdb and the server refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server: yields (host, port); database ``crm``, user ``slens`` with a password.

    One per worker process, shared by the PostgreSQL modules (starting one costs seconds); each module uses
    tables of its own. Skips when Debian's PostgreSQL is not installed."""
    psycopg = pytest.importorskip("psycopg")
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; scripts/test.sh does it)")
    root = Path(tempfile.mkdtemp(prefix="segmentlens-pgtest-"))
    data, port = root / "data", free_port()
    pwfile = root / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    try:
        subprocess.run(_as_pg_owner([str(pg_bin / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                                     "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(_as_pg_owner([str(pg_bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                                     "-w", "-t", "60", "start"]), check=True, capture_output=True, timeout=90)
        with psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, password=PG_PASSWORD, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_DB}")
        yield "127.0.0.1", port
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_pg_owner([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session for every Spark test in this process (stopped at the end of the run)."""
    pytest.importorskip("pyspark")
    from core.engines.spark_engine import spark_session

    session = spark_session("local[2]", config={"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_trained_sample(spark, tmp_path_factory):
    """`python -m core train --engine spark --data <sample> --quiet --json` (k 6, local[2]), run in this process
    (it joins ``spark``) once for the Spark modules: (exit code, registry folder, what it printed). Read-only."""
    import io

    from core.cli import commands as cli

    models, out = tmp_path_factory.mktemp("spark-models"), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("SEGMENTLENS_SPARK_MASTER", "local[2]")
        code = cli.main(["train", "--engine", "spark", "--data", str(SAMPLE), "--models", str(models), "--quiet",
                         "--json"])
    return code, models, out.getvalue()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A registry with one model trained on the sample: (registry, version, model, meta)."""
    from core.versions.pipeline import train
    from core.versions.registry import Registry

    registry = Registry(tmp_path_factory.mktemp("models"))
    version, model, meta = train(SAMPLE, registry=registry)
    return registry, version, model, meta


def copy_registry(source: Path, target: Path) -> Path:
    """A copy of the registry folder ``source`` at ``target`` (files, manifest and mtimes as they were)."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers 200, failing early if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {timeout}s ({last})")


class LiveServer:
    """A real server process (python app.py or gunicorn) on a free loopback port."""

    def __init__(self, url: str, proc: subprocess.Popen, models_dir: Path, cache_dir: Path):
        self.url, self.proc, self.models_dir, self.cache_dir = url, proc, models_dir, cache_dir

    def stop(self) -> None:
        """Terminate the server and everything it started (workers, background-callback jobs).

        SIGTERM, then SIGKILL after 2 s: `python app.py` exits at once, while gunicorn's graceful stop waits
        seconds for idle keep-alive connections to close, which no test looks at.
        """
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
        # Background-callback jobs are children of the server that may outlive it: end the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def procfile_command(host: str = "0.0.0.0") -> str:
    """The Procfile's web command, run with this interpreter's gunicorn (a virtualenv's bin/ may not be on PATH)."""
    command = (ROOT / "Procfile").read_text().split("web:", 1)[1].strip()
    if command.startswith("gunicorn "):
        command = f"{shlex.quote(sys.executable)} -m {command}"
    return command.replace("0.0.0.0", host)


def start_server(tmp: Path, *, gunicorn: bool = False, env: dict | None = None, data: Path = SAMPLE,
                 host: str = "127.0.0.1", wait_path: str = "/", models_from: Path | None = None) -> LiveServer:
    """Start the app in a subprocess with its own registry and cache under ``tmp``.

    ``models_from``: a registry copied into ``tmp/models`` first (the ``warm_models`` fixture), so that the
    server starts as a restart does instead of training its first model and computing its views.
    """
    port = free_port()
    models, cache = tmp / "models", tmp / "cache"
    if models_from is not None:
        shutil.copytree(models_from, models, dirs_exist_ok=True)
    full_env = dict(os.environ, SEGMENTLENS_MODELS=str(models), SEGMENTLENS_CACHE_DIR=str(cache),
                    SEGMENTLENS_DATA=str(data), HOST=host, PORT=str(port), PYTHONUNBUFFERED="1",
                    **(env or {}))
    if gunicorn:
        cmd = ["bash", "-c", f"exec {procfile_command(host=host)}"]
    else:
        cmd = [sys.executable, "app.py"]
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", proc, models, cache)
    try:
        wait_http(server.url + wait_path, proc=proc)
    except Exception:
        server.stop()
        raise RuntimeError((tmp / "server.log").read_text()[-3000:]) from None
    return server


def made_once(tmp_path_factory, name: str, make) -> Path:
    """The folder ``name`` that ``make(folder)`` fills once per test run, shared by all pytest-xdist workers.

    The first worker to ask makes it (holding a lock file); the others wait for it and reuse it. Use it only
    for results that tests read or copy, never change in place (the workers share the one folder).
    """
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's folder, shared by its workers (each has its own subfolder)
    folder, done = base / name, base / f"{name}.done"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


def _first_start(tmp: Path) -> None:
    env = dict(os.environ, SEGMENTLENS_MODELS=str(tmp / "models"), SEGMENTLENS_CACHE_DIR=str(tmp / "cache"),
               SEGMENTLENS_DATA=str(SAMPLE))
    for name in ("SEGMENTLENS_ADMIN_PASSWORD", "SEGMENTLENS_SECRET_KEY"):
        env.pop(name, None)
    subprocess.run([sys.executable, "-c", "from dashboard.factory import create_app; create_app()"], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=300)
    (tmp / "models" / "secret_key").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def warm_models(tmp_path_factory) -> Path:
    """A registry as a server's first start on the sample leaves it: v0001 trained, active, its views stored.

    Made once per run by the app's own start (create_app, in a subprocess; ``made_once``: one for all xdist
    workers); pass it as ``start_server(models_from=)`` or copy it (``copy_registry``) so each server or test
    has its own instead of training and computing views again. Never change it in place. Its secret key is not
    kept (each server makes its own). Tests of the first start itself start on an empty folder.
    """
    return made_once(tmp_path_factory, "warm", _first_start) / "models"


def _train_cdnow(tmp: Path) -> None:
    from core.versions.pipeline import train
    from core.versions.registry import Registry

    train(str(CDNOW.resolve()), registry=Registry(tmp / "models"))


def _cli_train_cdnow(tmp: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(CDNOW), "--models", str(tmp / "models"),
                           "--quiet", "--n-init", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="session")
def cdnow_trained_models(tmp_path_factory) -> Path:
    """A registry with one version trained on the CDNOW order log by ``pipeline.train`` (its defaults), made once
    per run for all xdist workers (``made_once``); skips when the log is absent. Copy it (``copy_registry`` or
    ``start_server(models_from=)``), never change it in place."""
    if not CDNOW.is_file():
        pytest.skip(f"CDNOW order log not present at {CDNOW}")
    return made_once(tmp_path_factory, "cdnow-trained", _train_cdnow) / "models"


@pytest.fixture(scope="session")
def cdnow_cli_models(tmp_path_factory) -> Path:
    """A registry with one version trained on the CDNOW order log by ``python -m core train --n-init 2``, made
    once per run for all xdist workers; skips when the log is absent. Copy it, never change it in place."""
    if not CDNOW.is_file():
        pytest.skip(f"CDNOW log not present at {CDNOW}")
    return made_once(tmp_path_factory, "cdnow-cli", _cli_train_cdnow) / "models"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, warm_models):
    """The dashboard served by `python app.py` on the sample, shared by the browser tests."""
    server = start_server(tmp_path_factory.mktemp("live"), models_from=warm_models)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def worker_br(request, tmp_path_factory):
    """One headless Chromium for every module of this process that opts in, made as dash.testing's per-test
    ``dash_br`` makes it.

    A module opts in by defining ``dash_br`` as ``shared_br`` (starting Chromium costs a second or two, several
    on a busy machine). ``shared_br`` clears what a test leaves; a test that changes the browser in another way
    (CDP settings) undoes it itself.
    """
    from dash.testing.browser import Browser

    option = request.config.getoption
    with Browser(browser=option("webdriver"), remote=option("remote"), remote_url=option("remote_url"),
                 headless=option("headless"), options=request.config.hook.pytest_setup_options(),
                 download_path=str(tmp_path_factory.mktemp("download")), percy_assets_root=option("percy_assets"),
                 percy_finalize=option("nopercyfinalize"), pause=option("pause")) as browser:
        yield browser


@pytest.fixture
def shared_br(worker_br):
    """``worker_br`` for one test, left as a fresh browser: earlier console entries read, then after the test
    its session and local storage, every cookie and the page cleared and the window back to 1400 x 1000."""
    worker_br.reset_log_timestamp()
    yield worker_br
    driver = worker_br.driver
    with contextlib.suppress(Exception):
        driver.execute_script("window.sessionStorage.clear(); window.localStorage.clear();")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.get("about:blank")
    driver.set_window_size(1400, 1000)


def console_errors(browser) -> list:
    """Severe browser console entries, ignoring none: every page must load clean."""
    return [entry for entry in browser.get_logs() if entry.get("level") == "SEVERE"]


# Modules that take longest (minutes in CI), longest first; see the module docstring. A module not named
# here keeps its place after them, in pytest's order; so does every test inside a module.
LONG_MODULES = (
    "test_spark_engine.py",  # with test_postgres_spark.py and test_recipe[spark]: one work unit (see below)
    "test_postgres_spark.py",
    "test_browser_a11y.py",  # each test its own work unit
    "test_browser_algorithms.py",
    "test_recipe.py",
    "test_browser_own_data.py",
    "test_postgres_train_log.py",
    "test_browser_data.py",
    "test_api.py",
    "test_security_attacks.py",
    "test_model_serving.py",
    "test_browser_keyboard.py",
    "test_monitoring_http.py",
    "test_browser_profiles_compare.py",
    "test_browser_auth.py",
    "test_browser_stability.py",
    "test_own_terms_browser.py",
    "test_migration_browser.py",
    "test_browser_value.py",
)


# Modules whose tests all use Spark; with test_recipe's [spark] case they make one xdist work unit (below).
SPARK_MODULES = ("test_spark_engine.py", "test_postgres_spark.py")


# Modules whose tests are each a work unit of their own: minutes each, and no module fixture used by two of them
# (test_browser_a11y.py: one mode a test, each on its own server), so the two workers share them out.
SPLIT_MODULES = ("test_browser_a11y.py",)


def _work_unit(nodeid: str) -> str:
    """A test's xdist work unit: its file (--dist loadfile), except that every Spark test shares one and a test
    of SPLIT_MODULES is one by itself."""
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    if name in SPARK_MODULES or (name == "test_recipe.py" and nodeid.endswith("[spark]")):
        return "spark"
    return nodeid if name in SPLIT_MODULES else path


@pytest.hookimpl(optionalhook=True)  # optional: the hook exists only with pytest-xdist
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with the Spark tests as one unit: one worker, one JVM and Spark session for all of them."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SparkTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return SparkTogether(config, log)


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture, which this sort keeps within a module
def pytest_collection_modifyitems(session, config, items):
    """Run the long modules first (stable: the rest keep their order); see the module docstring."""
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
