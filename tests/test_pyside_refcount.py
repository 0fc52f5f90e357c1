"""Guards against the PySide6 build that corrupts None's refcount on Python 3.11.

PySide6 6.12.0 on Python 3.11 decrements the reference count of None on every call of a Qt
method that returns nothing; after a few thousand calls the interpreter aborts. The project
excludes that build; this test makes the calls in a child process so an abort fails it.
"""

import subprocess
import sys
import textwrap


def test_twenty_thousand_void_qt_calls_do_not_abort():
    script = textwrap.dedent(
        """
        import sys
        from PySide6.QtWidgets import QApplication, QLabel
        app = QApplication([])
        label = QLabel()
        before = sys.getrefcount(None)
        for i in range(20000):
            label.setObjectName("n")
            label.setText("t")
            if i % 1000 == 0:
                app.processEvents()
        after = sys.getrefcount(None)
        print("drift", before - after)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    drift = int(result.stdout.split("drift")[1])
    assert drift < 1000, f"None lost {drift} references"
