"""Progress a user can read while a train stage runs: each seed's run reports its steps,
images/s and time left every few seconds, and the stage shows one status line that updates
in place below the runs' own lines. Only when the stage writes to a terminal: under CI, or
into a log file, nothing of it is printed."""
import os
import shutil
import sys
import threading
import time

PROGRESS = "INITSTUDY_PROGRESS"  # set by the train stage for its runs: "relay"
MARK = "progress: "  # a run's progress line, which the stage turns into its status line


def enabled():
    """"relay" when the run's stage relays its progress, "terminal" when the run itself
    writes to one, else None (no progress at all)."""
    if os.environ.get(PROGRESS) == "relay":
        return "relay"
    return "terminal" if sys.stdout.isatty() else None


def progress_text(epoch, epochs, done, steps, batch_size, seconds):
    """`epoch 1/2, step 300/704, 245 images/s, 3:10 left` (epoch counted from 0)."""
    rate = done * batch_size / seconds if seconds > 0 else 0.0
    left = ((epochs - epoch - 1) * steps + steps - done) * batch_size / rate if rate else 0.0
    return (f"epoch {epoch + 1}/{epochs}, step {done}/{steps}, {rate:.0f} images/s, "
            f"{int(left) // 60}:{int(left) % 60:02d} left")


def progress_callback(epochs, steps, batch_size, every=2.0):
    """A Keras callback printing progress_text every `every` seconds, or None when
    enabled() says there is nobody to read it."""
    import keras

    mode = enabled()
    if mode is None:
        return None

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.start, self.last = epoch, time.perf_counter(), 0.0

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if now - self.last >= every:
                self.last = now
                text = progress_text(self.epoch, epochs, batch + 1, steps, batch_size,
                                     now - self.start)
                if mode == "relay":
                    print(MARK + text, flush=True)
                else:
                    print("\r" + text, end="", flush=True)

        def on_epoch_end(self, epoch, logs=None):
            if mode == "terminal":
                print("\r\x1b[K", end="", flush=True)

    return Progress()


class StatusLine:
    """The stage's side: runs' lines pass through, each prefixed; their progress lines
    (MARK) update one status line kept below them. Thread-safe (one relay thread per run)."""

    def __init__(self, out=None):
        self.out, self.lock, self.state = out or sys.stdout, threading.Lock(), {}

    def _draw(self):
        width = shutil.get_terminal_size().columns - 1
        line = " | ".join(f"{prefix}{text}" for prefix, text in self.state.items())
        self.out.write("\r\x1b[K" + line[:width])
        self.out.flush()

    def line(self, prefix, line):
        with self.lock:
            if line.startswith(MARK):
                self.state[prefix] = line[len(MARK):].rstrip("\n")
            else:
                if self.state:
                    self.out.write("\r\x1b[K")
                self.out.write(f"{prefix}{line}")
            if self.state:
                self._draw()
            else:
                self.out.flush()

    def done(self, prefix):
        with self.lock:
            if self.state.pop(prefix, None) is not None:
                self.out.write("\r\x1b[K")
                if self.state:
                    self._draw()
                self.out.flush()
