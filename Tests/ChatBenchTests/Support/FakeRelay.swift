/// A deliberately broken relay for the tcp_chat line protocol, on loopback, in a thread of
/// the test process: to show that `tcp_chat bench` notices loss, duplicates and refusals
/// (the C harness's `limitrelay --fault` in miniature). One room for everyone.
import Foundation
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

final class FakeRelay: @unchecked Sendable {
    enum Fault: Sendable {
        /// Relays every message.
        case none
        /// Relays no copy of every Nth message.
        case drop(every: Int)
        /// Relays every Nth message twice.
        case duplicate(every: Int)
        /// Holds every Nth message back until its sender's next one has been relayed.
        case reorder(every: Int)
        /// Answers every login with this reply (`403`, `400`).
        case refuse(String)
    }

    let port: Int
    private let fault: Fault
    private let listenFD: Int32
    private let wake: PipePair
    private let finished = DispatchSemaphore(value: 0)

    // Owned by the relay thread.
    private struct Conn {
        var fd: Int32
        var name: String?
        var inbox: [UInt8] = []
        var out: [UInt8] = []
    }
    private var conns: [Conn] = []
    private var relayed = 0
    private var heldBack: [String: [UInt8]] = [:]

    init(_ fault: Fault) throws {
        _ = ignoreSIGPIPE
        self.fault = fault
        wake = try PipePair()
        let lfd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        listenFD = lfd
        guard lfd >= 0 else { throw E2EError("socket: \(errnoText())") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(lfd, $0, len) == 0 && listen(lfd, 128) == 0 && getsockname(lfd, $0, &len) == 0
            }
        }
        guard ok else { close(lfd); throw E2EError("bind/listen: \(errnoText())") }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let thread = Thread { [self] in loop(); finished.signal() }
        thread.start()
    }

    /// Stops the relay thread (bounded) and closes everything.
    func stop() {
        var b: UInt8 = 1
        _ = write(wake.writeEnd, &b, 1)
        _ = finished.wait(timeout: .now() + 5)
    }

    private func loop() {
        defer {
            for c in conns { close(c.fd) }
            close(listenFD)
            close(wake.readEnd)
            close(wake.writeEnd)
        }
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            var fds = [pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
            fds += conns.map { pollfd(fd: $0.fd, events: Int16(POLLIN) | ($0.out.isEmpty ? 0 : Int16(POLLOUT)), revents: 0) }
            let rc = poll(&fds, nfds_t(fds.count), 1000)
            if rc < 0 && errno == EINTR { continue }
            if rc < 0 || fds[0].revents != 0 { return }
            if fds[1].revents != 0 {
                let fd = accept(listenFD, nil, nil)
                if fd >= 0 {
                    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                    conns.append(Conn(fd: fd))
                }
            }
            for k in 0..<(fds.count - 2) where k < conns.count {
                let rev = fds[k + 2].revents
                if rev & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    let n = buf.withUnsafeMutableBytes { read(conns[k].fd, $0.baseAddress!, $0.count) }
                    if n > 0 {
                        conns[k].inbox.append(contentsOf: buf[..<n])
                        handleLines(k)
                    } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        close(conns[k].fd)
                        conns[k].fd = -1
                    }
                }
            }
            for k in conns.indices where conns[k].fd >= 0 && !conns[k].out.isEmpty {
                let n = conns[k].out.withUnsafeBytes { write(conns[k].fd, $0.baseAddress!, $0.count) }
                if n > 0 { conns[k].out.removeFirst(n) }
            }
            conns.removeAll { $0.fd < 0 }
        }
    }

    private func handleLines(_ k: Int) {
        while let nl = conns[k].inbox.firstIndex(of: 0x0A) {
            let line = Array(conns[k].inbox[..<nl])
            conns[k].inbox.removeSubrange(...nl)
            guard let name = conns[k].name else {
                if case .refuse(let reply) = fault {
                    conns[k].out += Array((reply + "\n").utf8)
                    continue
                }
                let handshake = String(decoding: line, as: UTF8.self)
                conns[k].name = String(handshake.split(separator: "_").first ?? "")
                conns[k].out += Array("200\n".utf8)
                continue
            }
            relayed += 1
            var copies = 1
            switch fault {
            case .drop(let n) where relayed % n == 0: copies = 0
            case .duplicate(let n) where relayed % n == 0: copies = 2
            default: break
            }
            var relayedLine = Array((name + " - ").utf8) + line + [0x0A]
            if case .reorder(let n) = fault {
                if let held = heldBack.removeValue(forKey: name) {
                    relayedLine += held
                } else if relayed % n == 0 {
                    heldBack[name] = relayedLine
                    continue
                }
            }
            for _ in 0..<copies {
                for j in conns.indices where conns[j].name != nil { conns[j].out += relayedLine }
            }
        }
    }
}
