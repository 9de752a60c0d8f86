"""One rank of the two-process run that ``test_ddp.py`` kills and resumes; launched by torch.distributed.run.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.zoo.ddp_run OUT_DIR [KILL_AT] [--resume]

Every rank SIGKILLs itself after optimizer step ``KILL_AT``, as a lost node would die.
Each rank draws from the global RNG as many numbers as its rank + 1 after every step (as
ranks do whose batches differ in shape), so the ranks' streams, which shape the noise of
their training examples, drift apart: a resume must restore each rank's own.
"""
import os
import signal
import sys

import torch

from tests.zoo.test_train import Blobs, accuracy, mlp
from zoo.train import TrainConfig, Trainer


def main(out_dir: str, kill_at: int | None, resume: bool) -> None:
    def draw_then_die(trainer, event):
        torch.rand(trainer.env.rank + 1)
        if event["step"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    torch.set_num_threads(1)
    config = TrainConfig(epochs=3, batch_size=16, lr=3e-3, deterministic=True, checkpoint_every_steps=3,
                         log_every_steps=4, progress=False, device="cpu")
    trainer = Trainer(mlp(), Blobs(noise=0.1), Blobs(128, seed=1), config=config, out_dir=out_dir,
                      metrics_fn=accuracy, callbacks=[draw_then_die])
    trainer.fit(resume=resume)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--resume"]
    main(args[0], int(args[1]) if len(args) > 1 else None, "--resume" in sys.argv)
