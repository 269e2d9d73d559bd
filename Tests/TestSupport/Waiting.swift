/// Bounded waits and readable failures, shared by every end-to-end test target.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed expectation of an end-to-end helper. Its text says what was expected and
/// what arrived instead, so a failing test explains itself without a rerun.
public struct E2EError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The moment a wait gives up. Every wait in these tests has one.
public struct Deadline {
    public let end: ContinuousClock.Instant

    public init(_ timeout: Duration) { end = .now + timeout }

    public var expired: Bool { ContinuousClock.now >= end }

    /// What is left, for poll(2): never negative, rounded up so a wait is not cut short.
    public var pollMilliseconds: Int32 {
        let left = end - ContinuousClock.now
        if left <= .zero { return 0 }
        return Int32(min(left.milliseconds.rounded(.up), Double(Int32.max)))
    }
}

extension Duration {
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
    public var milliseconds: Double { seconds * 1000 }
}

/// Bytes as a failure message shows them: printable ASCII as is, the rest escaped,
/// long runs cut in the middle.
public func describe<C: Collection>(_ bytes: C, limit: Int = 160) -> String where C.Element == UInt8 {
    func render<S: Sequence>(_ s: S) -> String where S.Element == UInt8 {
        var out = ""
        for b in s {
            switch b {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x5C: out += "\\\\"
            case 0x22: out += "\\\""
            case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(b))
            default: out += String(format: "\\x%02X", b)
            }
        }
        return out
    }
    if bytes.count <= limit { return "\"\(render(bytes))\" (\(bytes.count) bytes)" }
    let head = bytes.prefix(limit / 2), tail = bytes.suffix(limit / 2)
    return "\"\(render(head))…\(render(tail))\" (\(bytes.count) bytes)"
}

/// A write to a closed socket or pipe must fail with EPIPE, not kill the test runner.
/// Touch it (`_ = ignoreSIGPIPE`) before writing to anything.
public let ignoreSIGPIPE: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// Calls `attempt` until it returns a value or `timeout` passes, pausing `every` between
/// tries. For what can only be observed by asking again (a freed name, a recovered
/// accept queue); anything that announces itself is awaited directly instead.
public func retry<T>(for timeout: Duration, every pause: Duration = .milliseconds(25),
                     _ what: String, _ attempt: () throws -> T?) throws -> T {
    let deadline = Deadline(timeout)
    var last: Error?
    while true {
        do {
            if let v = try attempt() { return v }
        } catch {
            last = error
        }
        if deadline.expired {
            throw E2EError("\(what): still not true after \(timeout)" + (last.map { "; last error: \($0)" } ?? ""))
        }
        Thread.sleep(forTimeInterval: pause.seconds)
    }
}

/// True once `condition` holds, false when `timeout` passed first: `retry` for a check whose
/// failure the caller reports itself (a terminal's screen, a log's contents).
public func eventually(_ timeout: Duration, every pause: Duration = .milliseconds(50), _ condition: () throws -> Bool) -> Bool {
    (try? retry(for: timeout, every: pause, "condition") { try condition() ? true : nil }) != nil
}

/// `strerror` and the number, for failure messages.
public func errnoText(_ code: Int32 = errno) -> String { "\(String(cString: strerror(code))) (errno \(code))" }
