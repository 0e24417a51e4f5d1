"""NCCL INFO log parsing, on real logs (tests/fixtures/nccl/, each with its source), and judging."""

import json
from pathlib import Path

import pytest

from nccldoctor.findings import Severity
from nccldoctor.nccl_log import (
    NcclLogSummary,
    judge_nccl,
    merge_summaries,
    parse_nccl_log,
    parse_nccl_log_files,
)

FIXTURES = Path(__file__).parent / "fixtures" / "nccl"


def parse(name: str) -> NcclLogSummary:
    return parse_nccl_log((FIXTURES / name).read_text())


def test_every_fixture_names_its_source():
    logs = sorted(FIXTURES.glob("*.log"))
    assert len(logs) >= 10
    for log in logs:
        assert log.read_text().startswith("# source: "), log.name


def test_empty_and_unrelated_text_say_nothing():
    empty = NcclLogSummary()
    assert parse_nccl_log("") == empty
    assert parse_nccl_log("Rank 0: Completed store-based barrier\n\n   \n") == empty
    assert empty.transport is None and empty.ib_found is None and empty.iface is None


def test_nccl_2_4_without_using_network_line_is_ib():
    log = parse("ib_2.4_nv_peer_memory_56.log")
    assert log.version == "2.4.7"
    assert log.transport == "IB" and not log.uses_sockets
    assert log.socket_ifaces == ["ib0"] and log.bootstrap_ifaces == ["ib0"]  # the OOB interface
    assert log.ib_devices == ["mlx5_0:1"] and log.ib_found is True
    assert log.env == {"NCCL_IB_DISABLE": "0"}  # the trailing dot of integer variables dropped
    assert log.plugin is None  # "No plugin found" is not a plugin


def test_nccl_2_7_bootstrap_list_and_mixed_ib_roce_ports():
    log = parse("ib_2.7_nccl_487.log")
    assert log.version == "2.7.5"
    assert log.transport == "IB"
    assert log.bootstrap_ifaces[:3] == ["ibs101f0", "ibs101f1", "ibs102"] and len(log.bootstrap_ifaces) == 10
    assert log.iface == "ibs101f0"
    assert len(log.ib_devices) == 11 and log.ib_devices[-1] == "mlx5_11:1"
    assert log.ib_link_layers["mlx5_6:1"] == "RoCE" and log.ib_link_layers["mlx5_0:1"] == "IB"


def test_roce_run_2_19_bare_version_line():
    log = parse("roce_2.19_nccl_tests_185.log")
    assert log.version == "2.19.3"
    assert log.transport == "IB"  # RoCE runs over NCCL's IB transport
    assert log.ib_devices == ["mlx5_10:1", "mlx5_11:1"]
    assert set(log.ib_link_layers.values()) == {"RoCE"}
    assert log.bootstrap_ifaces == ["enp220s0np0"] and log.socket_ifaces == []
    assert log.plugin is None


def test_socket_run_with_no_ib_device_2_19():
    log = parse("socket_noib_2.19_nccl_1267.log")
    assert log.version == "2.19.3"
    assert log.transport == "Socket" and log.uses_sockets
    assert log.ib_found is False and log.ib_devices == []
    assert log.socket_ifaces == ["ens7"] and log.bootstrap_ifaces == ["ens7"]
    assert log.plugin is None  # an incompatible libnccl-net.so was found, not loaded


def test_missing_libibverbs_warning_means_no_ib_2_10():
    log = parse("socket_no_verbs_2.10_nccl_857.log")
    assert log.version == "2.10.3"
    assert log.ib_found is False  # from the WARN line: NCCL could not even look for devices
    assert log.transport == "Socket" and log.socket_ifaces == ["eth0"]


def test_ipv6_socket_addresses_keep_interface_names():
    log = parse("socket_noib_ipv6_oneflow_9115.log")
    assert log.socket_ifaces == ["eno1", "veth2ea2288", "vethae2223a"]
    assert log.bootstrap_ifaces == ["eno1"] and log.transport == "Socket" and log.ib_found is False


def test_socket_ifname_from_environment_2_11():
    log = parse("socket_forced_2.11_nccl_676.log")
    assert log.version == "2.11.4"
    assert log.socket_ifname_env == "en"
    assert log.bootstrap_ifaces == ["enp225s0f1"] and log.transport == "Socket"


def test_nccl_2_29_spellings():
    log = parse("socket_2.29_nccl_2047.log")
    assert log.version == "2.29.2"  # as an INFO line; "NCCL git version unknown" ignored
    assert log.bootstrap_ifaces == ["eth0"]  # "Bootstrap: Using", and not "Bootstrap: env ..."
    assert log.transport == "Socket"  # from "Initialized NET plugin Socket"
    assert log.ib_found is False  # "Failed to open libibverbs.so", "Failed to initialize NET plugin IB"
    assert log.socket_ifname_env == "eth0"
    assert log.env["NCCL_COMM_ID"] == "172.17.16.2:12340"


def test_ib_line_without_devices_is_not_a_device():
    log = parse("noib_2.29_nccl_2057.log")
    assert log.ib_devices == [] and log.ib_found is False
    assert log.bootstrap_ifaces == ["eth0"]
    assert log.transport is None  # the quoted log stops before NCCL picked a network


def test_assigned_net_plugin_and_gin_plugin_lines():
    log = parse("ib_assigned_nccl_1925.log")
    assert log.transports == ["IB"]  # "Assigned GIN plugin GIN_IB_GDAKI" is not a network
    assert log.ib_devices == ["mlx5_0:1"] and log.bootstrap_ifaces == ["eth0"]


def test_hpcx_plugin_network_and_sharp_ports():
    log = parse("ibext_sharp_plugin_nccl_1357.log")
    assert log.transport == "IBext" and not log.uses_sockets
    assert log.plugin == "NCCL RDMA Plugin v6"  # not the collnet "SHARP" line
    assert log.ib_devices == ["mlx5_0:1", "mlx5_1:1", "mlx5_4:1", "mlx5_5:1"]
    assert log.bootstrap_ifaces == ["ibp25s0"]


def test_network_from_channel_lines_alone():
    log = parse("ibext_channels_bond0_nccl_1814.log")
    assert log.transport == "IBext_v8"
    assert log.socket_ifname_env == "bond0" and log.bootstrap_ifaces == ["bond0"]
    assert log.version is None


def test_mpirun_prefix_and_failed_ofi_plugin():
    log = parse("socket_mpirun_prefix_aws_k8s_tester_454.log")
    assert log.transport == "Socket"  # "NET/OFI Using transport protocol SENDRECV" is not a network
    assert log.socket_ifaces == ["eth0"] and log.ib_found is False


def test_ray_prefix_plugin_v10_and_plugins_ifname_spelling():
    log = parse("plugin_v10_ray_prefix_vllm_dgx_spark_1.log")
    assert log.plugin == "NCCL RDMA Plugin v10"
    assert log.socket_ifname_env == "enp1s0f1np1"  # "NCCL_SOCKET_IFNAME set to" (the plugin's)
    assert log.transport is None


def test_the_surest_message_names_the_network():
    # A process may initialise IB, fail to assign it and go on to sockets: "Using network" decides.
    text = (
        "h:1:1 [0] NCCL INFO Initialized NET plugin IB\n"
        "h:1:1 [0] NCCL INFO Initialized NET plugin Socket\n"
        "h:1:1 [0] NCCL INFO Using network Socket\n"
    )
    assert parse_nccl_log(text).transports == ["Socket"]


def test_iface_prefers_the_bootstrap_interface():
    log = NcclLogSummary(socket_ifaces=["eth1", "eth0"], bootstrap_ifaces=["eth0"])
    assert log.iface == "eth0"
    assert NcclLogSummary(socket_ifaces=["eth1"]).iface == "eth1"


def test_hash_lines_are_notes_not_log():
    assert parse_nccl_log("# NCCL version 9.9.9 h:1:1 [0] NCCL INFO Using network IB\n") == NcclLogSummary()


def test_files_merge_per_node(tmp_path):
    (tmp_path / "nccl.101.log").write_text((FIXTURES / "socket_noib_2.19_nccl_1267.log").read_text())
    (tmp_path / "nccl.102.log").write_text(
        "host:102:102 [1] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [RO]; OOB ens7:10.128.0.33<0>\n"
        "host:102:102 [1] NCCL INFO Using network IB\n"
    )
    merged = parse_nccl_log_files(
        [tmp_path / "nccl.101.log", tmp_path / "nccl.102.log", tmp_path / "gone.log"]
    )
    assert merged.version == "2.19.3"  # only one file has it
    assert merged.transports == ["Socket", "IB"] and merged.uses_sockets
    assert merged.ib_found is True and merged.ib_devices == ["mlx5_0:1"]
    assert merged.bootstrap_ifaces == ["ens7"]
    assert parse_nccl_log_files([]) == NcclLogSummary() == merge_summaries([])


def test_summary_survives_json():
    log = parse("ib_2.7_nccl_487.log")
    assert NcclLogSummary.from_json(json.loads(json.dumps(log.to_json()))) == log


# --- judging -------------------------------------------------------------------------------

SOCKET = parse("socket_noib_2.19_nccl_1267.log")
IB = parse("roce_2.19_nccl_tests_185.log")


def test_fallback_when_ib_present_but_sockets_used():
    findings = judge_nccl({0: IB, 1: SOCKET}, {0: True, 1: True}, {}, {}, ib_devices={1: ["mlx5_0:1"]})
    assert [f.code for f in findings] == ["nccl_transport_fallback"]
    finding = findings[0]
    assert finding.severity is Severity.WARN and finding.nodes == [1]
    assert "node(s) 1 " in finding.message and "mlx5_0:1" in finding.message and "Socket" in finding.message
    assert finding.evidence["nccl_ib_found"] == {1: False}
    assert "ibstat" in finding.fix and "NCCL_IB_HCA" in finding.fix


def test_fallback_names_the_devices_nccls_own_log_listed():
    forced = parse_nccl_log(
        "h:1:1 [0] NCCL INFO NET/IB : Using [0]mlx5_9:1/RoCE [RO]; OOB eth0:10.0.0.1<0>\n"
        "h:1:1 [0] NCCL INFO Using network Socket\n"
    )
    (finding,) = judge_nccl({3: forced}, {3: True}, {3: {}}, {3: None})
    assert finding.nodes == [3] and "mlx5_9:1" in finding.message and "NCCL_NET" in finding.fix


@pytest.mark.parametrize(
    "env",
    [{"NCCL_IB_DISABLE": "1"}, {"NCCL_IB_DISABLE": " 2 "}, {"NCCL_NET": "socket"}],
)
def test_no_fallback_when_sockets_were_asked_for(env):
    assert judge_nccl({1: SOCKET}, {1: True}, {1: env}, {}) == []


def test_no_fallback_when_the_log_shows_ib_disabled():
    disabled = parse_nccl_log("h:1:1 [0] NCCL INFO NCCL_IB_DISABLE set by environment to 1.\n")
    log = merge_summaries([disabled, SOCKET])
    assert log.env == {"NCCL_IB_DISABLE": "1"} and log.uses_sockets
    assert judge_nccl({1: log}, {1: True}, {}, {}) == []


def test_no_fallback_when_transport_is_ib_or_node_has_no_ib():
    assert judge_nccl({0: IB}, {0: True}, {}, {}) == []
    assert judge_nccl({0: SOCKET}, {0: False}, {}, {}) == []
    assert judge_nccl({0: SOCKET}, {}, {}, {}) == []  # unknown: not judged
    assert judge_nccl({0: parse("ibext_sharp_plugin_nccl_1357.log")}, {0: True}, {}, {}) == []


def test_fallback_still_found_when_ib_disable_is_zero():
    ib_zero = merge_summaries([parse("ib_2.4_nv_peer_memory_56.log"), SOCKET])  # env NCCL_IB_DISABLE=0
    (finding,) = judge_nccl({2: ib_zero}, {2: True}, {2: {"NCCL_IB_DISABLE": "0"}}, {})
    assert finding.code == "nccl_transport_fallback" and finding.nodes == [2]


def test_iface_unexpected_names_node_and_both_interfaces():
    findings = judge_nccl({0: IB, 1: SOCKET}, {}, {}, {0: "enp220s0np0", 1: "eth0"})
    assert [f.code for f in findings] == ["nccl_iface_unexpected"]
    (finding,) = findings
    assert finding.nodes == [1] and finding.severity is Severity.WARN
    assert "node 1" in finding.message and "ens7" in finding.message and "eth0" in finding.message
    assert finding.fix.startswith("export NCCL_SOCKET_IFNAME=eth0") and "ens7" in finding.fix
    assert finding.evidence["predicted"] == "eth0" and finding.evidence["actual"] == "ens7"


def test_iface_compares_the_first_interface_nccl_used():
    log = parse("ib_2.7_nccl_487.log")  # Bootstrap lists ten; NCCL uses [0]
    assert judge_nccl({0: log}, {}, {}, {0: "ibs101f0"}) == []
    (finding,) = judge_nccl({0: log}, {}, {}, {0: "ib0"})
    assert "ibs101f0" in finding.message


def test_iface_not_judged_without_prediction_or_log():
    assert judge_nccl({0: SOCKET}, {}, {}, {0: None}) == []
    assert judge_nccl({0: NcclLogSummary()}, {}, {}, {0: "eth0"}) == []
