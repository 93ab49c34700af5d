"""Fixtures shared by all test directories: a live PostgreSQL server for tests marked postgres,
and a headless Chromium for the browser test of the HTML report."""

from __future__ import annotations

import os

import pytest

POSTGRES_URL_VAR = "RECSYS_TEST_POSTGRES_URL"


def _under_ci() -> bool:
    """True when the environment says we run in CI (``CI`` set and not ``false``/``0``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of a reachable PostgreSQL database, from ``RECSYS_TEST_POSTGRES_URL``.

    ``.ci/postgres.sh`` starts a throwaway server and exports the variable. Without it the
    test skips, except under CI (``CI=true``), where it fails: CI must run these tests. A set
    variable whose server does not answer ``select 1`` always fails.
    """
    url = os.environ.get(POSTGRES_URL_VAR)
    if not url:
        if _under_ci():
            pytest.fail(
                f"{POSTGRES_URL_VAR} is not set: the CI must start PostgreSQL via "
                ".ci/postgres.sh (source it, then call recsys_pg_start)"
            )
        pytest.skip(
            f"no PostgreSQL server: set {POSTGRES_URL_VAR} "
            "(bash -c 'source .ci/postgres.sh; recsys_pg_start' starts one)"
        )
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("select 1")).scalar_one() == 1
    except sqlalchemy.exc.SQLAlchemyError as error:
        pytest.fail(f"{POSTGRES_URL_VAR}={url} does not connect: {error}")
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the headless browser that :func:`recsys.report.browser.render` runs.

    Found by :func:`recsys.report.browser.find_chromium` (``RECSYS_CHROMIUM``, then
    ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``). Without one the test
    skips, except under CI (``CI=true``), where it fails: ``.ci/run`` installs Chromium via
    ``.ci/chromium.sh``, so the browser test must run there.
    """
    from recsys.report.browser import CHROMIUM_VAR, find_chromium

    found = find_chromium()
    if found is None:
        where = (
            f"{CHROMIUM_VAR}={os.environ[CHROMIUM_VAR]!r} is not an executable"
            if os.environ.get(CHROMIUM_VAR, "").strip()
            else "no chromium, chromium-browser or google-chrome on PATH"
        )
        if _under_ci():
            pytest.fail(
                f"headless Chromium is required under CI: {where}; .ci/run installs it via "
                ".ci/chromium.sh (source it, then call recsys_chromium_install)"
            )
        pytest.skip(
            f"no headless Chromium ({where}): install it with "
            "bash -c 'source .ci/chromium.sh; recsys_chromium_install' "
            f"(or apt-get install chromium), or set {CHROMIUM_VAR}"
        )
    return found
