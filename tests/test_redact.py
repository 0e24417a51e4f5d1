"""nccldoctor.redact: each shape of secret masked, exactly; what the tool diagnoses kept."""

from __future__ import annotations

import io
import sys

import pytest

from nccldoctor.findings import make_finding
from nccldoctor.redact import (
    MASK,
    RedactingStream,
    is_secret,
    mask_value,
    redact_file,
    redact_lines,
    redact_report,
    redact_text,
    redacting_streams,
    scrub,
)
from nccldoctor.report import Report
from nccldoctor.rows import Row

# Planted values look real but are not: AWS's documented example key, made-up tokens.
HF = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3k"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
WANDB = "0123456789abcdef0123456789abcdef01234567"  # 40 hex: also the shape of a git commit

REDACTED = [
    # URL userinfo: the host stays
    (
        "TORCH_HOME=https://alice:s3cr3tTOKENvalue@models.example/torch",
        "TORCH_HOME=https://***@models.example/torch",
    ),
    (f"git clone https://{GHP}@github.com/org/repo", "git clone https://***@github.com/org/repo"),
    ("proxy=socks5h://bob:pw@10.1.2.3:1080", "proxy=socks5h://***@10.1.2.3:1080"),
    # launcher options, = or a space; the option's name and the other options stay
    ("train.py --password=hunter2 --lr 3", "train.py --password=*** --lr 3"),
    ("train.py --db-passwd hunter2 --lr 3", "train.py --db-passwd *** --lr 3"),
    ("train.py --token abc --tokens 512", "train.py --token *** --tokens 512"),
    ("train.py --api-key=k1 --secret 's p'", "train.py --api-key=*** --secret '***'"),
    ("train.py --use-token --verbose", "train.py --use-token --verbose"),  # a flag, no value
    # HTTP authorization
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer ***"),
    ("curl -H 'Authorization: token abc123def'", "curl -H 'Authorization: token ***'"),
    ("sent Bearer abcdefgh12345678 to hub", "sent Bearer *** to hub"),
    # NAME=value / NAME: value with a secret's name inside longer text
    (
        "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_REGION=us-east-1",
        "export AWS_SECRET_ACCESS_KEY=*** AWS_REGION=us-east-1",
    ),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = ***"),
    ('config {"hf_token": "abc", "lr": 3}', 'config {"hf_token": "***", "lr": 3}'),
    ("https://hub.example/x?access_token=abc&page=2", "https://hub.example/x?access_token=***&page=2"),
    ("NET/Socket : truncated, token=deadbeef on node01", "NET/Socket : truncated, token=*** on node01"),
    # known shapes, wherever they are
    ("key id AKIAIOSFODNN7EXAMPLE in use", "key id *** in use"),
    ("sts ASIAIOSFODNN7EXAMPLE", "sts ***"),
    (f"login with {HF} failed", "login with *** failed"),
    (f"WANDB_API_KEY={WANDB}", "WANDB_API_KEY=***"),
    (f"wandb login --relogin {WANDB}", "wandb login --relogin ***"),
    (f"push {GHP} now", "push *** now"),
    ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "pat ***"),
    ("slack xoxb-123456789012-abcdefABCDEF posted", "slack *** posted"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nafter",
        "-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----\nafter",
    ),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\n", "-----BEGIN OPENSSH PRIVATE KEY-----***\n"),  # cut off
]

KEPT = [
    "NCCL_IB_PKEY=0x8001 NCCL_IB_HCA=mlx5_0:1,mlx5_1:1 NCCL_SOCKET_IFNAME=^docker0,lo",
    "node01:2201:2290 [0] NCCL INFO Channel 00 : 0[0] -> 1[1] via NET/IB/0 10.0.0.1<45763>",
    "GPU-6f2a1b3c-1234-5678-9abc-def012345678 on gpu-a17.cluster.example (192.168.1.7)",
    f"code commit {WANDB} (clean)",  # a git SHA: 40 hex, not named as a W&B key
    "/home/alice/.cache/torch/hub and https://models.example/torch/w.pt",
    "torch.distributed.DistStoreError: Timed out waiting for key: variants/ifaces/0/plan",
    "KeyError: 'NCCL_ALGO'",
    "HF_TOKEN: masked:0123456789abcdef",  # consistency's digest: compared, never the secret
    "step 10 loss 2.31 tokens/s 51234",
    "ssh gpu-a17 -p 22 -- nvidia-smi",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_each_shape_is_masked_and_the_rest_kept(text, expected):
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent


@pytest.mark.parametrize("text", KEPT)
def test_what_the_tool_diagnoses_is_not_masked(text):
    assert redact_text(text) == text


def test_names_that_say_secret_mask_the_value_whole():
    assert is_secret("HF_TOKEN") and is_secret("AWS_SECRET_ACCESS_KEY") and is_secret("db-password")
    assert not is_secret("NCCL_IB_PKEY") and not is_secret("KEYBOARD") and not is_secret("TOKENS_PER_STEP")
    assert mask_value("TORCH_HUB_TOKEN", "plain") == MASK
    assert mask_value("TORCH_HOME", "https://u:p@h/x") == "https://***@h/x"
    assert mask_value("NCCL_IB_PKEY", "0x8001") == "0x8001"


def test_scrub_walks_nested_dicts_lists_and_tuples():
    data = {
        "variables": {"TORCH_HUB_TOKEN": "abc", "TORCH_HOME": "https://u:p@h/x", "NCCL_IB_PKEY": "0x8001"},
        "differs_by_node": {"HF_TOKEN": {0: "t1", 1: None}},
        "lines": ["ok", ("Authorization: Bearer abcdefgh12345678", 3)],
        "https://u:p@h/key-as-key": 1.5,
        "count": 2,
        "flag": True,
        "none": None,
    }
    assert scrub(data) == {
        "variables": {"TORCH_HUB_TOKEN": MASK, "TORCH_HOME": "https://***@h/x", "NCCL_IB_PKEY": "0x8001"},
        "differs_by_node": {"HF_TOKEN": {0: "t1", 1: None}},  # values of a secret's name: its own masks
        "lines": ["ok", ("Authorization: Bearer ***", 3)],
        "https://***@h/key-as-key": 1.5,
        "count": 2,
        "flag": True,
        "none": None,
    }
    assert scrub(scrub(data)) == scrub(data)


def test_a_report_is_scrubbed_in_every_part():
    row = Row(
        probe="all_reduce",
        size_bytes=1024,
        count=256,
        dtype="float32",
        op="sum",
        root=-1,
        inplace=False,
        time_us=10.0,
        algbw_gbps=1.0,
        busbw_gbps=1.0,
        wrong=0,
        min_time_us=9.0,
        max_time_us=11.0,
        slowest_rank=1,
        wrong_ranks=[],
        wrong_sources=[],
        iters=3,
        world_size=2,
        setting="TORCH_HOME=https://u:p@h/x",
        sweep="settings",
    )
    report = Report(
        job={"nodes": [{"hostname": "gpu-a17"}]},
        environment={"variables": {"TORCH_HOME": "https://u:p@h/x"}},
        results=[row],
        findings=[
            make_finding("unexplained_failure", f"failed: {HF}", evidence={"lines": [f"--token {HF}"]})
        ],
        sections={"config": {"sweep": [["TORCH_HOME", ["https://u:p@h/x"]]]}},
    )
    clean = redact_report(report).to_dict()
    text = repr(clean)
    assert HF not in text and "u:p@" not in text
    assert clean["results"][0]["setting"] == "TORCH_HOME=https://***@h/x"
    assert clean["findings"][0]["message"] == "failed: ***"
    assert clean["findings"][0]["evidence"]["lines"] == ["--token ***"]
    assert clean["config"]["sweep"] == [["TORCH_HOME", ["https://***@h/x"]]]
    assert clean["job"] == report.job  # nothing to mask: the host names stay


def test_a_copied_log_loses_a_key_block_spanning_lines(tmp_path):
    source = tmp_path / "nccl.log"
    source.write_text(
        "n1:1:1 [0] NCCL INFO NCCL_IB_HCA set by environment to mlx5_0\n"
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0BAQE\n-----END PRIVATE KEY-----\n"
        "n1:1:1 [0] NCCL INFO TORCH_HOME=https://u:p@models.example/t\n"
    )
    target = tmp_path / "copy.log"
    redact_file(source, target)
    assert target.read_text() == (
        "n1:1:1 [0] NCCL INFO NCCL_IB_HCA set by environment to mlx5_0\n"
        "-----BEGIN PRIVATE KEY-----***\n-----END PRIVATE KEY-----\n"
        "n1:1:1 [0] NCCL INFO TORCH_HOME=https://***@models.example/t\n"
    )
    assert list(redact_lines(["a\n", "b\n"])) == ["a\n", "b\n"]


def test_streams_mask_what_is_printed():
    buffer = io.StringIO()
    stream = RedactingStream(buffer)
    assert stream.write(f"error: --hf-token {HF}\n") == len(f"error: --hf-token {HF}\n")
    assert buffer.getvalue() == "error: --hf-token ***\n"
    assert stream.getvalue() == buffer.getvalue()  # everything else is the stream's own
    before = sys.stdout
    with redacting_streams():
        assert isinstance(sys.stdout, RedactingStream) and isinstance(sys.stderr, RedactingStream)
    assert sys.stdout is before


def test_consistency_compares_a_credential_by_digest_and_never_shows_it():
    from nccldoctor.consistency.facts import compared_env

    a = compared_env({"TORCH_HOME": "https://u:token1@h/x", "NCCL_IB_HCA": "mlx5_0"})
    b = compared_env({"TORCH_HOME": "https://u:token2@h/x", "NCCL_IB_HCA": "mlx5_0"})
    assert a["TORCH_HOME"].startswith("https://***@h/x (masked:") and "token1" not in a["TORCH_HOME"]
    assert a["TORCH_HOME"] != b["TORCH_HOME"]  # nodes with different tokens still differ
    assert a["NCCL_IB_HCA"] == "mlx5_0"


def test_scrub_keeps_a_dataclass_with_its_fields_scrubbed():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Seen:
        name: str
        values: tuple[str, ...]

    seen = scrub({"x": Seen("TORCH_HOME", ("https://u:p@h/x", "plain"))})["x"]
    assert seen == Seen("TORCH_HOME", ("https://***@h/x", "plain"))


def test_a_field_named_key_keeps_its_value_and_a_secret_name_still_masks():
    # the expectations evidence cites its rule by key; a real credential's name still masks
    rule = {"rule": {"file": "expect.toml", "key": "probes.all_reduce.min_busbw_gbps", "line": 7}}
    assert scrub(rule) == rule
    assert scrub({"api_key": "abc123", "keys": ["a", "b"]}) == {"api_key": MASK, "keys": ["a", "b"]}
