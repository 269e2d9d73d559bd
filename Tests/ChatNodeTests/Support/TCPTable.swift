/// What the kernel says about a TCP connection (Linux /proc/net/tcp and tcp6).
import Foundation
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

enum TCPTable {
    /// TCP_ESTABLISHED in the kernel's state numbering.
    static let established = 1

    /// The state of the socket whose local port is `localPort` and remote port is
    /// `remotePort` (both on this machine), or nil when none is listed. The kernel builds
    /// these files in pieces, so a busy table may skip a row: nil proves nothing.
    /// Lets a test see that the node closed its side of a connection without first reading
    /// everything the node had sent on it.
    static func state(localPort: Int, remotePort: Int) -> Int? {
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = readWholeFile(file) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count > 3, port(f[1]) == localPort, port(f[2]) == remotePort else { continue }
                return Int(f[3], radix: 16)
            }
        }
        return nil
    }

    private static func port(_ address: Substring) -> Int? {
        guard let colon = address.lastIndex(of: ":") else { return nil }
        return Int(address[address.index(after: colon)...], radix: 16)
    }
}

/// A whole file read with read(2) until EOF. Foundation's `String(contentsOfFile:)` trusts
/// st_size, which is 0 for /proc files, and stops after the first 4 KiB of them.
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return nil }
        if n == 0 { break }
        out.append(contentsOf: buf[..<n])
    }
    return String(decoding: out, as: UTF8.self)
}
