#!/usr/bin/env bash
# `make install` and `make uninstall`: puts a built Genflow where an operator expects it.
#
#   scripts/install.sh install|uninstall
#
# Settings (environment, as make passes them):
#   PREFIX      /usr/local      binaries in PREFIX/bin, read-only files in PREFIX/share/genflow
#   DESTDIR     (empty)         staging root for packagers: files go to DESTDIR/PREFIX/...
#   SYSCONFDIR  PREFIX/etc/genflow (/etc/genflow when PREFIX is /usr): the config, pipelines, plugins
#   STATEDIR    /var/lib/genflow  the state_dir written into a new config (the unit's StateDirectory)
#   BINARIES    .build-release/release  where genflow, genflow-plugin-anthropic and the dashboard are
#
# What an operator edits (genflow.yaml, pipelines/, plugins/) is installed only where it does not
# exist yet: a reinstall or an upgrade never overwrites it. The shipped copies are always refreshed
# in PREFIX/share/genflow/examples, to compare with. `uninstall` removes what install put in bin,
# share and the unit's folder, and leaves the configuration and the state directory.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:?usage: scripts/install.sh install|uninstall}
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
if [ "$PREFIX" = /usr ]; then default_sysconf=/etc/genflow; else default_sysconf=$PREFIX/etc/genflow; fi
SYSCONFDIR=${SYSCONFDIR:-$default_sysconf}
STATEDIR=${STATEDIR:-/var/lib/genflow}
BINARIES=${BINARIES:-.build-release/release}

bin=$DESTDIR$PREFIX/bin
share=$DESTDIR$PREFIX/share/genflow
doc=$DESTDIR$PREFIX/share/doc/genflow
units=$DESTDIR$PREFIX/lib/systemd/system
sysusers=$DESTDIR$PREFIX/lib/sysusers.d
conf=$DESTDIR$SYSCONFDIR
programs=(genflow genflow-plugin-anthropic)

# The shipped paths (/usr/local/...) in the unit and the config, rewritten for this install.
rewrite() {
    sed -e "s|/usr/local/etc/genflow|$SYSCONFDIR|g" -e "s|/usr/local/bin|$PREFIX/bin|g" -e "s|/usr/local/share|$PREFIX/share|g" \
        -e "s|/var/lib/genflow|$STATEDIR|g" "$@"
}

# etc/genflow.yaml with absolute paths: an installed daemon does not run from the source tree.
installed_config() {
    sed -e "s|^# yaml-language-server: \$schema=schema/config.schema.json|# yaml-language-server: \$schema=$PREFIX/share/genflow/schema/config.schema.json|" \
        -e "s|^state_dir: .*|state_dir: $STATEDIR|" \
        -e "s|^pipelines_dir: .*|pipelines_dir: $SYSCONFDIR/pipelines|" \
        -e "s|^plugins_dir: .*|plugins_dir: $SYSCONFDIR/plugins|" etc/genflow.yaml
}

# Copies a folder's files into a destination, skipping those already there (an operator's edits).
copy_new() {
    local from=$1 to=$2 file
    (cd "$from" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*') | while read -r file; do
        if [ -e "$to/$file" ]; then
            echo "  kept $to/${file#./} (exists; the shipped one is in $PREFIX/share/genflow/examples)"
        else
            install -D -m 0644 "$from/$file" "$to/$file"
        fi
    done
}

case $action in
install)
    for program in "${programs[@]}"; do
        [ -x "$BINARIES/$program" ] || { echo "install: $BINARIES/$program is missing: build it first (make install does)" >&2; exit 1; }
    done
    [ -f "$BINARIES/genflow_GenflowAPI.resources/Dashboard/index.html" ] || { echo "install: the dashboard is missing from $BINARIES" >&2; exit 1; }
    echo "Installing Genflow into ${DESTDIR}${PREFIX} (configuration in ${DESTDIR}${SYSCONFDIR})"
    for program in "${programs[@]}"; do install -D -m 0755 "$BINARIES/$program" "$bin/$program"; done
    rm -rf "$share"
    install -d "$share/dashboard" "$share/schema" "$share/examples" "$doc"
    install -m 0644 "$BINARIES"/genflow_GenflowAPI.resources/Dashboard/* "$share/dashboard/"
    install -m 0644 etc/schema/*.json "$share/schema/"
    install -m 0644 docs/*.md "$doc/"
    cp -R pipelines "$share/examples/pipelines"
    cp -R plugins "$share/examples/plugins"
    find "$share/examples" -name __pycache__ -prune -exec rm -rf {} +
    installed_config > "$share/examples/genflow.yaml"
    install -d -m 0755 "$conf"
    if [ -e "$conf/genflow.yaml" ]; then
        echo "  kept $conf/genflow.yaml (exists; the shipped one is $PREFIX/share/genflow/examples/genflow.yaml)"
    else
        install -m 0644 "$share/examples/genflow.yaml" "$conf/genflow.yaml"
    fi
    copy_new pipelines "$conf/pipelines"
    copy_new plugins "$conf/plugins"
    rewrite etc/systemd/genflow.service | install -D -m 0644 /dev/stdin "$units/genflow.service"
    install -D -m 0644 etc/systemd/genflow.sysusers "$sysusers/genflow.conf"
    echo "Installed. Next: systemd-sysusers; systemctl daemon-reload; systemctl enable --now genflow (docs/operator.md, Deploying)"
    ;;
uninstall)
    for program in "${programs[@]}"; do rm -f "$bin/$program"; done
    rm -rf "$share" "$doc"
    rm -f "$units/genflow.service" "$sysusers/genflow.conf"
    echo "Removed Genflow from ${DESTDIR}${PREFIX}; kept ${DESTDIR}${SYSCONFDIR} and $STATEDIR (delete them by hand to purge)"
    ;;
*)
    echo "usage: scripts/install.sh install|uninstall" >&2
    exit 2
    ;;
esac
