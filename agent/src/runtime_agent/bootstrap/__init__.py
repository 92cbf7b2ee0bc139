"""Start-up hook directory used by ``runtime-agent run`` (see sitecustomize.py)."""
