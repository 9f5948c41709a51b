"""A GPU trial for benchmarks/gpu_check.py (CPU where no CUDA is present, to check the harness).

It records what only a GPU box shows: the process, the devices it sees (CUDA_VISIBLE_DEVICES,
torch's count), whether CUDA was already initialised when the trial began (a warm horse keeps
the previous trial's context), how long the first CUDA operation took (the context's creation,
or nothing), and the device memory free at the start (a stopped trial must leave none behind).
Then it allocates `mib` MiB on the device and trains a small MLP for `epochs` epochs of
`seconds / epochs`, logging `loss` each epoch (hyperband can prune it). One JSON line per trial
goes to $SWEEPQ_BENCH_OUT/gpu_trials.jsonl.

Function mode: `program: gpu_trial:train`; subprocess mode: `python gpu_trial.py`.
"""

import json
import os
import time

T_START = time.time()
import torch  # noqa: E402

import sweepq  # noqa: E402


def train(config: sweepq.Config) -> None:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    record: dict[str, object] = {
        "trial": int(config["i"]),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda": cuda,
        "devices": torch.cuda.device_count() if cuda else 0,
        "initialised_at_entry": bool(cuda and torch.cuda.is_initialized()),
        "since_process_start_s": round(time.time() - T_START, 3),
    }
    t = time.perf_counter()
    torch.zeros(1, device=device)
    if cuda:
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        record.update(name=torch.cuda.get_device_name(0), free_mib=free >> 20, total_mib=total >> 20)
    record["first_op_ms"] = round((time.perf_counter() - t) * 1000, 3)
    hold = torch.empty(int(config["mib"]) << 18, device=device)  # float32: 4 bytes each
    g = torch.Generator(device=device).manual_seed(int(config["i"]))
    x = torch.randn(4096, 64, device=device, generator=g)
    y = (x[:, :4].sum(1, keepdim=True) > 0).float()
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=float(config["lr"]))
    epochs, per_epoch = int(config["epochs"]), float(config["seconds"]) / int(config["epochs"])
    record["outcome"] = "finished"
    try:
        for _epoch in range(epochs):
            until = time.monotonic() + per_epoch
            while time.monotonic() < until:
                opt.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
                loss.backward()
                opt.step()
            sweepq.log({"loss": float(loss.item())})
    except sweepq.Stopped:
        record["outcome"] = "stopped"
    finally:
        del hold
        with open(os.path.join(os.environ["SWEEPQ_BENCH_OUT"], "gpu_trials.jsonl"), "a") as out:
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    train(sweepq.init().config)
