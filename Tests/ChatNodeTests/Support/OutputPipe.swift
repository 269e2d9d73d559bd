/// A child process's output, read with bounded waits.
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

/// The read end of a pipe that a child writes to. Reads only when asked, with poll(2),
/// so a test waits for a line the way it waits on a socket: up to a deadline.
final class OutputPipe {
    private let pair: PipePair
    private var writeEndOpen = true
    /// Everything read so far.
    private(set) var bytes: [UInt8] = []
    private(set) var reachedEOF = false

    init() throws { pair = try PipePair() }

    deinit {
        closeWriteEnd()
        close(pair.readEnd)
    }

    /// The descriptor to hand the child as its stdout or stderr.
    var childEnd: Int32 { pair.writeEnd }

    /// Call once the child is started: from then on EOF means the child closed its output.
    func closeWriteEnd() {
        if writeEndOpen { close(pair.writeEnd); writeEndOpen = false }
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Reads until the output contains `needle`, the child closes its end, or the deadline.
    /// Returns whether `needle` was seen.
    func waitFor(_ needle: String, timeout: Duration) -> Bool {
        let deadline = Deadline(timeout)
        let want = Array(needle.utf8)
        while true {
            if contains(want) { return true }
            if reachedEOF || !readOnce(deadline) { return contains(want) }
        }
    }

    /// Reads whatever is ready now, without waiting.
    func drain() {
        while !reachedEOF, readOnce(Deadline(.zero)) {}
    }

    /// Waits up to the deadline for the pipe to be readable, then reads once.
    /// False on timeout or EOF.
    private func readOnce(_ deadline: Deadline) -> Bool {
        while true {
            var p = pollfd(fd: pair.readEnd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&p, 1, deadline.pollMilliseconds)
            if rc < 0 && errno == EINTR { continue }
            if rc <= 0 { return false }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = buf.withUnsafeMutableBytes { read(pair.readEnd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { reachedEOF = true; return false }
            bytes.append(contentsOf: buf[..<n])
            return true
        }
    }

    private func contains(_ want: [UInt8]) -> Bool {
        guard !want.isEmpty else { return true }
        guard bytes.count >= want.count else { return false }
        for i in 0...(bytes.count - want.count) where bytes[i] == want[0] {
            if bytes[i..<(i + want.count)].elementsEqual(want) { return true }
        }
        return false
    }
}
