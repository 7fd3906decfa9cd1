"""A callback for the kill-and-resume tests: it SIGKILLs its own process at a chosen optimizer
step when PROMPTREC_TEST_KILL_AT is set, the way a pre-empted job dies (no cleanup, no exception),
or sends another signal (PROMPTREC_TEST_SIGNAL=SIGINT: Ctrl-C). Without the variable it does
nothing, so the resumed run can keep it in its saved config."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        at = os.environ.get("PROMPTREC_TEST_KILL_AT")
        if at is not None and trainer.global_step >= int(at) and not getattr(self, "sent", False):
            self.sent = True  # once: a Ctrl-C'd run may go on to its end of epoch
            chosen = signal.Signals[os.environ.get("PROMPTREC_TEST_SIGNAL", "SIGKILL")]
            if chosen == signal.SIGINT:  # Ctrl-C as in a terminal, even where the test runner
                signal.signal(signal.SIGINT, signal.default_int_handler)  # left SIGINT ignored
            os.kill(os.getpid(), chosen)
