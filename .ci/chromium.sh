# shellcheck shell=bash
# Headless Chromium for the browser test of the HTML report (tests/report/test_report_browser.py).
#
# Meant to be sourced (it works under `set -euo pipefail`):
#
#   source .ci/chromium.sh
#   recsys_chromium_install    # prints "== chromium <version>"
#
# recsys_chromium_install
#   - does nothing but print the version when `chromium` is already on PATH;
#   - otherwise, as root, installs Debian's `chromium` package quietly (apt-get, no recommends);
#   - not root and no chromium: under CI (CI=true) an error, otherwise a warning (the browser
#     test skips).
#
# From the repository root, once, then run the test:
#
#   bash -c 'source .ci/chromium.sh; recsys_chromium_install'
#   . .venv/bin/activate && pytest -q tests/report/test_report_browser.py
#
# A browser elsewhere: RECSYS_CHROMIUM=/path/to/chrome (see recsys/report/browser.py).

_recsys_chromium_say() {
    echo "$@" >&2
}

recsys_chromium_install() {
    if ! command -v chromium >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]]; then
            _recsys_chromium_say "== installing chromium (apt-get)"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                chromium >/dev/null
        fi
        if ! command -v chromium >/dev/null 2>&1; then
            local msg="chromium is not installed and we are not root to install it:"
            msg+=" apt-get install chromium"
            if [[ -n ${CI:-} && ${CI:-} != false && ${CI:-} != 0 ]]; then
                _recsys_chromium_say "error: $msg"
                return 1
            fi
            _recsys_chromium_say "warning: $msg; the browser test will skip"
            return 0
        fi
    fi
    # Debian's launcher script can print a harmless shell warning on stderr; keep the version.
    local version
    version=$(chromium --version 2>/dev/null | head -n 1) || version="(version unknown)"
    _recsys_chromium_say "== chromium ${version#Chromium }"
}
