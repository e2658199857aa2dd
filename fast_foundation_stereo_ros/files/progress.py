"""A small text progress bar on stderr (no dependency).

On a terminal it redraws one line; otherwise (logs, CI, tests) it prints a
line every `log_every` percent so captured output stays short.
"""
import sys
import time


class ProgressBar:
    def __init__(self, total, label='', stream=None, enabled=True, width=30, log_every=25):
        self.total = max(int(total or 0), 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.log_every = log_every
        self.count = 0
        self._start = time.perf_counter()
        self._interactive = hasattr(self.stream, 'isatty') and self.stream.isatty()
        self._last_logged = -1

    def update(self, step=1):
        self.count += step
        if not self.enabled:
            return
        if self._interactive:
            self.stream.write('\r' + self._line())
            self.stream.flush()
            return
        percent = int(100 * self.count / self.total) if self.total else 0
        bucket = percent // self.log_every
        if bucket > self._last_logged:
            self._last_logged = bucket
            self.stream.write(self._line() + '\n')

    def close(self):
        if self.enabled and self._interactive:
            self.stream.write('\n')
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self):
        elapsed = time.perf_counter() - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        if self.total:
            done = min(self.count / self.total, 1.0)
            filled = int(round(done * self.width))
            bar = '#' * filled + '-' * (self.width - filled)
            return f'{self.label} [{bar}] {self.count}/{self.total} ({rate:.1f}/s)'
        return f'{self.label} {self.count} ({rate:.1f}/s)'
