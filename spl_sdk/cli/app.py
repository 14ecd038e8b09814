"""``spl app``: start the Streamlit studio (``streamlit run`` on the installed ``apps/studio.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from spl_sdk.cli.options import handle_errors
from spl_sdk.errors import SplError
from spl_sdk.extras import check


def studio_path() -> Path:
    """Where the app's entry script lies in the installed ``spl_apps`` package."""
    try:
        import spl_apps
    except ImportError:
        raise SplError("the app package 'spl_apps' is not installed; reinstall spl-sdk "
                       "(pip install -e .).") from None
    return Path(spl_apps.__file__).resolve().parent / "studio.py"


def streamlit_command(address: str, port: int, headless: bool, extra: tuple[str, ...]) -> list[str]:
    """The ``python -m streamlit run`` command line with our server options and the passthrough args."""
    from spl_apps.uploads import MAX_UPLOAD_MB  # the browser refuses what the app would refuse

    return [sys.executable, "-m", "streamlit", "run", str(studio_path()),
            "--server.address", address, "--server.port", str(port),
            "--server.headless", str(headless).lower(),
            "--server.maxUploadSize", str(MAX_UPLOAD_MB),
            "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal",  # no Deploy button: this is a local studio
            *extra]


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def studio_env(address: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The app's environment: on a loopback address the one user may load model folders from disk.

    Served on any other address, visitors may not (spl_apps.resources), unless the
    operator sets SPL_STUDIO_MODEL_FOLDERS; an explicit setting always wins.
    """
    env = dict(os.environ if environ is None else environ)
    if address in LOOPBACK:
        env.setdefault("SPL_STUDIO_MODEL_FOLDERS", "1")
    return env


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--address", "--server.address", "address", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 makes the app reachable from other machines; "
                   "visitors then cannot load model folders from this machine unless "
                   "SPL_STUDIO_MODEL_FOLDERS=1).")
@click.option("--port", "--server.port", "port", type=click.IntRange(1, 65535), default=8501,
              show_default=True, help="TCP port of the app.")
@click.option("--headless/--browser", default=False, show_default=True,
              help="Do not open a browser window (servers, containers).")
@click.option("--print-command", is_flag=True, help="Print the streamlit command instead of running it.")
@click.argument("streamlit_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def app(address: str, port: int, headless: bool, print_command: bool,
        streamlit_args: tuple[str, ...]) -> None:
    """Start the SPL studio web app; arguments after the options go to 'streamlit run'."""
    check("streamlit", "app", "spl app")
    command = streamlit_command(address, port, headless, streamlit_args)
    if print_command:
        click.echo(" ".join(command))
        return
    sys.exit(subprocess.call(command, env=studio_env(address)))
