import Glibc

/// Puts the terminal on stdin into the mode the line editor needs, and puts it back.
///
/// ICANON and ECHO off: we read keys one by one and draw the line ourselves. ISIG off:
/// Ctrl+C arrives as byte 0x03 and ends the session through the normal path (IEXTEN off
/// likewise for Ctrl+V/Ctrl+O). IXON off so Ctrl+S cannot freeze the screen; ICRNL off so
/// Enter is `\r`. Output processing (OPOST) stays on.
final class RawTerminal {
    private var saved = termios()
    private var active = false

    /// Switches the terminal; nil if stdin is not a terminal it can configure.
    init?() {
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return nil }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL | INLCR)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 else { return nil }
        active = true
    }

    /// Restores the saved settings; safe to call more than once.
    func restore() {
        guard active else { return }
        active = false
        _ = tcsetattr(STDIN_FILENO, TCSANOW, &saved)
    }

    deinit { restore() }

    /// The terminal's width in columns (80 when it cannot be asked).
    static func columns() -> Int {
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }
}
