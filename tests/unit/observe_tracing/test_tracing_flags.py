"""`hivegate run --otel-*`: what the flags become, one-line errors naming the flag (never a header's value), and
OpenTelemetry imported only when tracing is configured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.config.run import RunConfig
from hivegate.errors import ConfigError


def config(*flags: str) -> RunConfig:
    args = build_parser().parse_args(["run", *flags, "--", "server-bin"])
    return config_from_args(args)


def test_tracing_is_off_by_default() -> None:
    cfg = config()
    assert (cfg.otel_endpoint, cfg.otel_service_name, cfg.otel_sampling_rate, cfg.otel_headers) == (None, None, 1.0, ())


def test_flags_become_the_config() -> None:
    cfg = config(
        "--otel-endpoint", "http://127.0.0.1:4318/", "--otel-service-name", "edge-gw", "--otel-sampling-rate", "0.25",
        "--otel-headers", "x-api-key=s3cret=with=equals", "--otel-headers", "X-Team= ops ",
    )  # fmt: skip
    assert cfg.otel_endpoint == "http://127.0.0.1:4318"
    assert cfg.otel_service_name == "edge-gw"
    assert cfg.otel_sampling_rate == 0.25
    assert cfg.otel_headers == (("x-api-key", "s3cret=with=equals"), ("X-Team", "ops"))
    assert "s3cret" not in repr(cfg)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--otel-endpoint", "127.0.0.1:4318?x=1"], "--otel-endpoint: expected an http:// or https:// collector URL"),
        (["--otel-endpoint", "ftp://collector"], "--otel-endpoint: expected an http"),
        (["--otel-endpoint", "http://[::1"], "--otel-endpoint: expected an http"),
        (["--otel-endpoint", "http://collector:99999"], "--otel-endpoint: expected an http"),
        (["--otel-endpoint", "https://user:pw@collector"], "--otel-endpoint: put credentials in --otel-headers"),
        (["--otel-endpoint", "http://c", "--otel-sampling-rate", "1.5"], "--otel-sampling-rate must be a number"),
        (["--otel-endpoint", "http://c", "--otel-sampling-rate", "half"], "--otel-sampling-rate must be a number"),
        (["--otel-endpoint", "http://c", "--otel-sampling-rate", "nan"], "--otel-sampling-rate must be a number"),
        (["--otel-endpoint", "http://c", "--otel-service-name", " "], "--otel-service-name must not be empty"),
        (["--otel-endpoint", "http://c", "--otel-headers", "no-equals-sign"], "--otel-headers: expected KEY=VALUE"),
        (["--otel-endpoint", "http://c", "--otel-headers", "bad key=v"], "--otel-headers: 'bad key' is not a valid"),
        (["--otel-sampling-rate", "0.5"], "--otel-sampling-rate needs --otel-endpoint"),
        (["--otel-headers", "a=b"], "--otel-headers needs --otel-endpoint"),
    ],
)
def test_bad_values_name_the_flag(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("?", r"\?")) as err:
        config(*flags)
    assert "\n" not in str(err.value)


def test_a_bad_header_value_is_not_echoed() -> None:
    with pytest.raises(ConfigError, match=r"^--otel-headers: the value of 'authorization' has a line break") as err:
        config("--otel-endpoint", "http://c", "--otel-headers", "authorization=Bearer top-secret\r\nx: y")
    assert "top-secret" not in str(err.value)


def test_opentelemetry_is_imported_only_when_tracing_is_configured() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import hivegate.cli.main as m\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    m.main(['--help'])\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    m.main(['run', '--help'])\n"
        "assert not [n for n in sys.modules if n.startswith('opentelemetry')], 'opentelemetry imported early'\n"
        "from hivegate.cli.run import config_from_args\n"
        "from hivegate.compose.run_gateway import build_gateway\n"
        "cfg = config_from_args(m.build_parser().parse_args(['run', '--', 'x']))\n"
        "build_gateway(cfg)\n"
        "assert not [n for n in sys.modules if n.startswith('opentelemetry')], 'opentelemetry imported untraced'\n"
        "argv = ['run', '--otel-endpoint', 'http://127.0.0.1:9', '--', 'x']\n"
        "cfg = config_from_args(m.build_parser().parse_args(argv))\n"
        "gw = build_gateway(cfg)\n"
        "assert 'opentelemetry.sdk.trace' in sys.modules\n"
        "print([line for line in gw.summary if line.startswith('tracing')])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['tracing: OTLP/HTTP to http://127.0.0.1:9/v1/traces (sampling 1)']"
