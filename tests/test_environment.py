from nccldoctor.environment import MASK, differences_by_node, relevant_env


def test_relevant_variables_are_kept_and_secrets_masked():
    env = relevant_env(
        {
            "NCCL_SOCKET_IFNAME": "eth0",
            "GLOO_SOCKET_IFNAME": "ib0",
            "CUDA_VISIBLE_DEVICES": "0,1",
            "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
            "HOME": "/root",
            "PATH": "/bin",
            "NCCL_IB_PASSWORD": "hunter2",
            "TORCH_HUB_TOKEN": "abc",
            "MASTER_SECRET_KEY": "k",
            "UCX_CREDENTIALS": "c",
            "AWS_SECRET_ACCESS_KEY": "never-collected",
            "NCCL_IB_PKEY": "0x8001",
            "TORCH_API_KEY": "k2",
        }
    )
    assert env["NCCL_SOCKET_IFNAME"] == "eth0" and env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert env["NCCL_IB_PASSWORD"] == MASK and env["TORCH_HUB_TOKEN"] == MASK
    assert env["MASTER_SECRET_KEY"] == MASK and env["UCX_CREDENTIALS"] == MASK
    assert "HOME" not in env and "PATH" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert "hunter2" not in repr(env) and env["TORCH_API_KEY"] == MASK
    assert env["NCCL_IB_PKEY"] == "0x8001"  # a partition key, not a secret: KEY must be a whole word


def test_differences_between_nodes_ignore_per_rank_variables():
    diff = differences_by_node(
        {
            0: {"NCCL_SOCKET_IFNAME": "eth0", "RANK": "0", "NCCL_DEBUG": "INFO"},
            1: {"NCCL_SOCKET_IFNAME": "eth1", "RANK": "4", "NCCL_DEBUG": "INFO"},
            2: {"RANK": "8", "NCCL_DEBUG": "INFO"},
        }
    )
    assert diff == {"NCCL_SOCKET_IFNAME": {0: "eth0", 1: "eth1", 2: None}}
