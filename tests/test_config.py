import dataclasses
import re
from pathlib import Path

import pytest

from nccldoctor.config import (
    ALL_PROBES,
    BenchConfig,
    CollectiveOptions,
    DdpOptions,
    Flag,
    SweepOptions,
    build_parser,
    config_section,
    flag_of,
    groups,
    parse_args,
)
from nccldoctor.errors import UsageError


def test_defaults_cover_every_probe_and_sizes_grow_by_the_factor():
    config = parse_args([]).collectives
    assert config.probes == list(ALL_PROBES)
    assert config.check and config.iters == 20 and config.warmup == 5
    assert parse_args(["-b", "1K", "-e", "1M", "-f", "4"]).collectives.sizes() == [
        1024,
        4096,
        16384,
        65536,
        262144,
        1048576,
    ]


def test_nccl_tests_spellings_are_accepted():
    config = parse_args(
        [
            "-b",
            "8",
            "-e",
            "128M",
            "-f",
            "2",
            "-n",
            "50",
            "-w",
            "10",
            "-d",
            "half",
            "-o",
            "max",
            "-c",
            "0",
            "-r",
            "1",
        ]
    ).collectives
    assert (config.dtype, config.op, config.check, config.root) == ("float16", "max", False, 1)
    assert config.max_bytes == 128 << 20 and config.iters == 50


def test_expect_busbw_global_and_per_probe():
    assert parse_args(["--expect-busbw", "20"]).collectives.expect_busbw == dict.fromkeys(ALL_PROBES, 20.0)
    assert parse_args(["--expect-busbw", "all_reduce=20,sendrecv=7.5"]).collectives.expect_busbw == {
        "all_reduce": 20.0,
        "sendrecv": 7.5,
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-b", "12Q"], "--min-bytes: '12Q' is not a size"),
        (["--iters", "-3"], "--iters must be 1 or more, not -3"),
        (["-n", "x"], "'x' is not a whole number"),
        (["--probes", "all_reduce,bogus"], "unknown probe 'bogus'"),
        (["-d", "float8"], "unknown dtype 'float8'"),
        (["-d", "float8"], "also float, double, half, int, bf16, fp16, fp32)"),  # the aliases too
        (["-o", "xor"], "unknown op 'xor'"),
        (["-o", "avg", "-d", "int32"], "avg needs a floating dtype"),
        (["-b", "1M", "-e", "1K"], "--min-bytes (1M) is larger than --max-bytes (1K)"),
        (["-f", "1"], "--step-factor must be 2 or more"),
        (["--timeout", "0"], "--timeout must be a positive"),
        (["-c", "2"], "'2' is not 0 or 1"),
        (["--expect-busbw", "all_reduce:20"], "not a number of GB/s .use 20, or all_reduce=20"),
        (["--expect-busbw", "all_reduce=20,bogus=3"], "is not PROBE=GBPS"),
        (["--expect-busbw", "fast"], "'fast' is not a number"),
        (["--backend", "mpi"], "'mpi' is not one of"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--health", "yes"], "'yes' is not on or off"),
        (["--straggler-warn", "1.5"], "'1.5' is not a score in (0, 1]"),
        (["--straggler-fail", "x"], "'x' is not a number"),
        (["--straggler-warn", "0.7"], "need 0 < fail < warn <= 1"),
    ],
)
def test_bad_input_is_one_usage_error(argv, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_args(argv)


def test_expected_bandwidth_for_a_probe_that_does_not_run_is_bad_usage():
    with pytest.raises(UsageError, match="names sendrecv, which --probes does not run"):
        parse_args(["--probes", "all_reduce", "--expect-busbw", "all_reduce=10,sendrecv=5"])
    config = parse_args(["--probes", "all_reduce", "--expect-busbw", "10"])
    assert config.collectives.expect_busbw == {"all_reduce": 10.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [("70000", "not a port"), ("a-b", "not a port"), ("100-50", "reversed range"), ("0", "not a port")],
)
def test_bad_port_lists_are_one_line_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_args(["--ports", text])


def test_ports_and_ifaces_parse():
    config = parse_args(["--ports", "40000-40100, 29400", "--ifaces", "eth0,ib0,eth0"]).network
    assert config.ports == [(40000, 40100), (29400, 29400)] and config.ifaces == ["eth0", "ib0"]
    assert parse_args([]).network.ifaces == "auto"
    assert parse_args(["--ifaces", "off"]).network.ifaces == "off"
    with pytest.raises(UsageError, match="--ifaces"):
        parse_args(["--ifaces", "eth0;rm"])
    # IB ports ("device:port") and devices, for the per-NIC sweep through NCCL_IB_HCA
    assert parse_args(["--ifaces", "mlx5_0:1,mlx5_1"]).network.ifaces == ["mlx5_0:1", "mlx5_1"]
    for bad in ("mlx5_0:x", "mlx5_0:1:2", ":1"):
        with pytest.raises(UsageError, match="--ifaces"):
            parse_args(["--ifaces", bad])


def test_health_and_straggler_thresholds_parse():
    config = parse_args(["--health", "off", "--straggler-warn", "0.8", "--straggler-fail", "0.5"]).health
    assert (config.enabled, config.straggler_warn, config.straggler_fail) == (False, 0.8, 0.5)
    default = parse_args([]).health
    assert default.enabled and (default.straggler_warn, default.straggler_fail) == (0.9, 0.75)


# -- one declaration per option: the parser, the report and the docs come from it ------------

# The report's flat `config` section is part of the report.json contract: its keys never change.
REPORT_KEYS = {
    *("probes", "min_bytes", "max_bytes", "step_factor", "iters", "warmup", "dtype", "op", "check", "root"),
    *("expect_busbw", "ports", "ifaces", "health", "straggler_warn", "straggler_fail"),
    *("sweep", "max_combos", "sweep_repeats", "ddp", "ddp_only", "ddp_model", "ddp_batch", "ddp_accum"),
    *("ddp_bucket_mb", "ddp_steps", "ckpt_dir", "backend", "timeout", "out", "strict", "quiet", "sizes"),
    *("check_package", "code", "check_path", "clock_warn", "clock_fail", "silence"),
    *("quick", "expect", "baseline", "regression_fail", "regression_noise", "html"),
}


def declared_flags() -> list[Flag]:
    return [flag_of(f) for _, group in groups() for f in dataclasses.fields(group)]


def test_the_parser_defaults_are_the_declared_defaults_and_the_report_keys_stay():
    parser = build_parser()
    defaults = {flag.key: parser.get_default(flag.key) for flag in declared_flags()}
    section = config_section(BenchConfig())
    assert set(section) == REPORT_KEYS
    assert defaults == {key: value for key, value in section.items() if key != "sizes"}
    assert config_section(parse_args([])) == section


def test_every_declared_flag_is_in_the_readme_flags_table_and_nothing_else_is():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("### Flags", 1)[1].split("\n\n", 3)[2]  # prose, table, prose
    documented = {
        name.rstrip(",")
        for cell in re.findall(r"^\| `([^`]+)`", table, re.MULTILINE)
        for name in cell.split()
    }
    declared = {name for flag in declared_flags() for name in flag.names}
    assert declared <= documented, f"flags missing from README.md: {sorted(declared - documented)}"
    metavars = {name for name in documented - declared if not name.startswith("-")}  # `--out DIR`
    assert documented - metavars == declared, f"README.md documents {sorted(documented - declared)}"


def test_groups_default_alone_and_validate_their_own_fields():
    config = BenchConfig(collectives=CollectiveOptions(iters=3, root=1))
    assert (config.collectives.iters, config.collectives.root, config.ddp.steps) == (3, 1, 10)
    with pytest.raises(UsageError, match="--iters must be 1 or more, not 0"):
        CollectiveOptions(iters=0)
    with pytest.raises(UsageError, match="--sweep-repeats must be 2 or more"):
        SweepOptions(repeats=1)
    with pytest.raises(UsageError, match="--probes: name at least one probe"):
        BenchConfig(collectives=CollectiveOptions(probes=[]))
    only = BenchConfig(ddp=DdpOptions(only=True))
    assert only.collectives.probes == [] and not only.health.enabled and only.network.ifaces == "off"


# -- --help: each placeholder is the word its help text uses ------------------------------------

# Capitals in help texts that are names, not placeholders for the value.
ACRONYMS = {"GB", "NIC", "GPU", "CPU", "DDP", "NCCL", "CUDA", "TOML", "HTML"}


def value_options(parser):
    """parser's options that take a value, as (names, metavar, help)."""
    return [(a.option_strings, a.metavar, a.help or "") for a in parser._actions if a.nargs != 0]


def help_parsers():
    from nccldoctor.cli import build_parser as build_cli

    subcommands = next(a for a in build_cli()._actions if isinstance(a.choices, dict)).choices
    return {"nccldoctor.bench": build_parser(), **{p.prog: p for p in subcommands.values()}}


@pytest.mark.parametrize("prog", list(help_parsers()))
def test_every_value_has_a_declared_metavar_naming_the_help_texts_placeholder(prog):
    for names, metavar, text in value_options(help_parsers()[prog]):
        assert metavar, f"{prog} {names}: argparse would show the dest in capitals"
        placeholders = set(re.findall(r"\b[A-Z][A-Z_]+\b", text)) - ACRONYMS
        assert all(word in metavar for word in placeholders), f"{prog} {names} {metavar}: {text}"


def test_out_shows_dir_as_its_help_says():
    for prog, parser in help_parsers().items():
        outs = [metavar for names, metavar, _ in value_options(parser) if "--out" in names]
        assert outs in ([], ["DIR"]), prog
    assert "--out DIR " in build_parser().format_help()


# -- --quick ------------------------------------------------------------------------------------


def test_quick_measures_two_collectives_at_five_sizes_without_sweeps_or_ddp_on_cpu():
    config = parse_args(["--quick", "--backend", "gloo"])
    assert config.collectives.probes == ["all_reduce", "all_gather"]
    assert config.collectives.sizes() == [8, 256, 8 * 1024, 256 * 1024, 8 * 1024**2]
    assert (config.collectives.iters, config.collectives.warmup) == (10, 2)
    assert config.network.ifaces == "off" and not config.ddp.enabled and not config.sweep.settings
    assert config.health.enabled  # rank scores and node-pair links stay
    assert config_section(config)["quick"] is True  # the report says which preset it ran


def test_quick_on_nccl_goes_on_to_256m_where_gpu_busbw_levels_off():
    assert parse_args(["--quick", "--backend", "nccl"]).collectives.sizes()[-1] == 256 * 1024**2


def test_flags_set_with_quick_win_over_the_preset():
    config = parse_args(
        ["--quick", "--backend", "gloo", "--probes", "all_reduce", "-n", "40", "--ifaces", "eth0"]
    )
    assert config.collectives.probes == ["all_reduce"]
    assert config.collectives.iters == 40
    assert config.network.ifaces == ["eth0"]
    assert config.collectives.warmup == 2  # what was not set still comes from the preset


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sweep", "NCCL_ALGO=Ring,Tree"], "--quick runs no settings sweep"),
        (["--ddp-only"], "--quick runs no DDP benchmark"),
    ],
)
def test_quick_refuses_what_it_would_not_run(extra, message):
    with pytest.raises(UsageError, match=message):
        parse_args(["--quick", *extra])
