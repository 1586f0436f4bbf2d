# Sourced (POSIX sh) before pip runs in the build stage: points pip at what
# docker/buildenv/ provides (CA bundle, pip.conf, constraints, local wheels).
BUILDENV="${BUILDENV:-/opt/buildenv}"
if [ -f "$BUILDENV/ca-certificates.crt" ]; then
    export PIP_CERT="$BUILDENV/ca-certificates.crt"
    export SSL_CERT_FILE="$BUILDENV/ca-certificates.crt"
    export REQUESTS_CA_BUNDLE="$BUILDENV/ca-certificates.crt"
fi
if [ -f "$BUILDENV/pip.conf" ]; then
    export PIP_CONFIG_FILE="$BUILDENV/pip.conf"
fi
if [ -f "$BUILDENV/pip-constraints.txt" ]; then
    export PIP_CONSTRAINT="$BUILDENV/pip-constraints.txt"
fi
if ls "$BUILDENV"/wheels/*.whl >/dev/null 2>&1; then
    export PIP_FIND_LINKS="$BUILDENV/wheels"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
