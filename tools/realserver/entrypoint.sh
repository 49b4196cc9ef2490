#!/bin/sh
# Entrypoint of airlock/openhands-pypi: one image, two roles.
#
#   (no argument) or app-server [uvicorn options]
#       the OpenHands app server: uvicorn openhands.app_server.app:app on port 3000
#       (root: it drives the sandboxes through the mounted Docker socket)
#   agent-server [options], or options only (e.g. --port 8000)
#       the agent-server of a sandbox: what the app server's Docker sandbox service starts,
#       as the official agent-server image does (its command is ["--port", "8000"]).
#       Runs as the unprivileged user openhands (uid 10001), like the official image.
#   anything else: run it as given
set -e
case "${1:-app-server}" in
  app-server)
    [ $# -gt 0 ] && shift
    exec uvicorn openhands.app_server.app:app --host 0.0.0.0 --port 3000 "$@" ;;
  agent-server|-*)
    [ "$1" = agent-server ] && shift
    # OH_PERSISTENCE_DIR (/.openhands) is the app server's state directory; the
    # agent-server keeps its own under the user's home (~/.openhands), as in the
    # official agent-server image, which does not set it.
    unset OH_PERSISTENCE_DIR
    if [ "$(id -u)" = 0 ]; then
      mkdir -p /workspace/project
      chown openhands:openhands /workspace /workspace/project
      export HOME=/home/openhands USER=openhands LOGNAME=openhands
      exec setpriv --reuid=openhands --regid=openhands --init-groups -- \
        python -m openhands.agent_server "$@"
    fi
    exec python -m openhands.agent_server "$@" ;;
  *)
    exec "$@" ;;
esac
