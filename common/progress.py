"""Progress of long loops, fit for screens and for files.

    progress = Progress(len(batches), "epoch 1/2")
    for batch in batches:
        ...
        progress.add(1, loss=loss)
    progress.close()            # only needed when the loop may stop before the total

On a terminal (standard output is a tty) this is Keras' progress bar, redrawn in place. When the
output goes to a file or a pipe it is plain lines, no carriage returns and no colour codes, at
most one every `BERT_SPEEDUP_PROGRESS_SECONDS` seconds (default 20) plus one at the end:

    epoch 1/2: step 20/63 (31%), loss 0.6911, 0:41 elapsed, ~1:28 left

Values given to `add` are shown as their mean since the start (weighted by the count added).
"""
import os
import sys
import time

INTERVAL_VARIABLE = "BERT_SPEEDUP_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 20.0


def on_terminal(stream=None):
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def clock(seconds):
    """0:41, 12:05, 1:02:09."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Progress of `total` units (None: unknown) of the step named `what` (see the module doc).
    `unit`: what one unit is ("step", "example", "pass"); `named`: print `what` above the bar
    on a terminal (False when the caller has just printed it)."""

    def __init__(self, total, what, unit="step", stream=None, interval=None, named=True):
        self.total, self.what, self.unit = total, what, unit
        self.stream = stream or sys.stdout
        self.interval = float(os.environ.get(INTERVAL_VARIABLE, DEFAULT_INTERVAL)
                              if interval is None else interval)
        self.done, self.sums, self.closed = 0, {}, False
        self.started = self.last_line = time.monotonic()
        self.bar = None
        if on_terminal(self.stream):
            import keras

            if named:
                print(what, file=self.stream, flush=True)
            self.bar = keras.utils.Progbar(total, unit_name=unit)

    def add(self, count=1, **values):
        if self.closed:
            return
        self.done += count
        for key, value in values.items():
            total, weight = self.sums.get(key, (0.0, 0))
            self.sums[key] = (total + float(value) * count, weight + count)
        if self.bar is not None:
            self.bar.add(count, values=list(values.items()))
            if self.total is not None and self.done >= self.total:
                self.closed = True
            return
        finished = self.total is not None and self.done >= self.total
        if finished or time.monotonic() - self.last_line >= self.interval:
            self._line()
        if finished:
            self.closed = True

    def close(self):
        """End the display (a loop that stopped before `total`)."""
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.update(self.done, finalize=True)
        elif self.done:
            self._line()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def line(self):
        """The plain line for the progress so far."""
        elapsed = time.monotonic() - self.started
        parts = [f"{self.unit} {self.done}"]
        if self.total:
            parts[0] += f"/{self.total} ({100 * self.done // self.total}%)"
        parts += [f"{key} {total / weight:.4f}" for key, (total, weight) in self.sums.items()]
        parts.append(f"{clock(elapsed)} elapsed")
        if self.total and 0 < self.done < self.total:
            parts.append(f"~{clock(elapsed * (self.total - self.done) / self.done)} left")
        return f"{self.what}: " + ", ".join(parts)

    def _line(self):
        self.last_line = time.monotonic()
        print(self.line(), file=self.stream, flush=True)

