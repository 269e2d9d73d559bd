/// Certificates made with the `openssl` command at test time, and third-party TLS clients
/// (`openssl s_client`, Python's `ssl`) driven through pipes with bounded waits (docs/tls.md).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A temp directory with a cluster CA, node certificates it signed, and the bad cases:
/// a second CA and a node certificate from it, an expired certificate, one for another name.
/// Every certificate names `localhost` and `127.0.0.1` unless said otherwise.
final class TLSCerts {
    let dir: String
    var ca: String { "\(dir)/ca.pem" }
    var cert: String { "\(dir)/node.pem" }
    var key: String { "\(dir)/node.key" }
    var otherCA: String { "\(dir)/other-ca.pem" }
    var otherCert: String { "\(dir)/other.pem" }
    var otherKey: String { "\(dir)/other.key" }
    var expiredCert: String { "\(dir)/expired.pem" }
    var wrongNameCert: String { "\(dir)/wrongname.pem" }

    /// The node's flags for TLS with these files.
    var serverFlags: [String] { ["--tls-cert", cert, "--tls-key", key, "--tls-ca", ca] }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tcp_chat-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try makeCA("ca", "tcp_chat test cluster CA")
        try makeCA("other-ca", "some other CA")
        try issue("node", by: "ca", cn: "localhost", san: "DNS:localhost,IP:127.0.0.1")
        try issue("other", by: "other-ca", cn: "localhost", san: "DNS:localhost,IP:127.0.0.1")
        try issue("expired", by: "ca", cn: "localhost", san: "DNS:localhost,IP:127.0.0.1", days: -1, key: "node")
        try issue("wrongname", by: "ca", cn: "elsewhere.example", san: "DNS:elsewhere.example", key: "node")
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    private func makeCA(_ name: String, _ cn: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).pem", "-days", "30", "-subj", "/CN=\(cn)",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    }

    /// A certificate `name.pem` signed by `ca`, with the key `key.key` (made when new).
    func issue(_ name: String, by ca: String, cn: String, san: String, days: Int = 30, key: String? = nil) throws {
        let keyName = key ?? name
        if !FileManager.default.fileExists(atPath: "\(dir)/\(keyName).key") {
            try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "\(dir)/\(keyName).key"])
        }
        try openssl(["req", "-new", "-key", "\(dir)/\(keyName).key", "-out", "\(dir)/\(name).csr", "-subj", "/CN=\(cn)"])
        let ext = "\(dir)/\(name).ext"
        try "basicConstraints=CA:FALSE\nsubjectAltName=\(san)\nextendedKeyUsage=serverAuth,clientAuth\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/\(ca).pem", "-CAkey", "\(dir)/\(ca).key",
                     "-set_serial", "\(Int.random(in: 1...Int(Int32.max)))", "-days", "\(days)", "-extfile", ext,
                     "-out", "\(dir)/\(name).pem"])
    }

    private func openssl(_ args: [String]) throws {
        let err = try OutputPipe()
        let child = try ChildProcess(executable: "/usr/bin/openssl", arguments: args, stderr: err.childEnd)
        err.closeWriteEnd()
        guard child.waitForExit(timeout: .seconds(20)) else { throw E2EError("openssl \(args.joined(separator: " ")) hung") }
        err.drain()
        guard child.exitCode == 0 else {
            throw E2EError("openssl \(args.joined(separator: " ")) \(child.statusText): \(err.text)")
        }
    }
}

/// A child process the test talks to through its stdin and reads through its stdout (and
/// stderr, kept apart): `openssl s_client`, a Python script, our own client.
final class InteractiveChild {
    let child: ChildProcess
    let out: OutputPipe
    let err: OutputPipe
    private var input: Int32
    let label: String

    init(_ label: String, _ executable: String, _ arguments: [String]) throws {
        _ = ignoreSIGPIPE
        self.label = label
        let stdin = try PipePair()
        out = try OutputPipe()
        err = try OutputPipe()
        child = try ChildProcess(executable: executable, arguments: arguments,
                                 stdin: stdin.readEnd, stdout: out.childEnd, stderr: err.childEnd)
        close(stdin.readEnd)
        out.closeWriteEnd()
        err.closeWriteEnd()
        input = stdin.writeEnd
    }

    deinit {
        closeInput()
        child.killAndReap()
    }

    func write(_ text: String) throws {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(input, $0.baseAddress, $0.count) }
            guard n > 0 else { throw E2EError("\(label): cannot write to its stdin: \(errnoText())") }
            bytes = bytes.dropFirst(n)
        }
    }

    func closeInput() {
        if input >= 0 { close(input); input = -1 }
    }

    /// Waits for `needle` on stdout; throws with both outputs when it does not come.
    func expectOutput(_ needle: String, timeout: Duration = .seconds(10)) throws {
        guard out.waitFor(needle, timeout: timeout) else {
            err.drain()
            throw E2EError("\(label): expected \"\(needle)\" on stdout; got \(describe(out.bytes))\n--- stderr ---\n\(err.text)")
        }
    }

    /// Waits for the child to exit and returns its code and stderr.
    func finish(timeout: Duration = .seconds(10)) throws -> (code: Int32, stderr: String) {
        guard child.waitForExit(timeout: timeout) else {
            child.killAndReap()
            err.drain()
            throw E2EError("\(label) did not exit within \(timeout)\n--- stderr ---\n\(err.text)")
        }
        err.drain()
        out.drain()
        guard let code = child.exitCode else { throw E2EError("\(label) \(child.statusText)\n\(err.text)") }
        return (code, err.text)
    }
}

/// `openssl s_client` logged in to a node as a chat client (`-quiet`: only the session's bytes
/// on stdout; `-verify_return_error`: a certificate that does not verify ends it).
func sClient(port: Int, ca: String, extra: [String] = []) throws -> InteractiveChild {
    try InteractiveChild("s_client", "/usr/bin/openssl",
                         ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", ca,
                          "-verify_return_error", "-quiet", "-verify_hostname", "localhost"] + extra)
}

/// Resident memory of a process in KiB, from /proc.
func residentKiB(_ pid: Int32) -> Int? {
    guard let status = readWholeFile("/proc/\(pid)/status") else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "")
    }
    return nil
}
