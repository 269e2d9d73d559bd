/// TLS on the node's one port (docs/tls.md): detected by the first byte, under every handler;
/// third-party clients (`openssl s_client`, Python's `ssl`) and ours chat with plaintext
/// clients in one room; what must be refused is refused, with a clear reason.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("TLS", .serialized)
struct TLSTests {
    // MARK: Clients

    @Test func openSSLClientChatsWithAPlaintextClient() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags)
        let tls = try sClient(port: node.port, ca: certs.ca)
        try tls.write("alice_room\n")
        try tls.expectOutput("200\n")
        let bob = try LineClient.join("bob", "room", port: node.port)
        try tls.write("hello over TLS\n")
        try expectNextLine(bob, "alice - hello over TLS")
        try bob.send("hello in the clear\n")
        try tls.expectOutput("bob - hello in the clear\n")
        #expect(node.isRunning)
        try node.stop()
    }

    @Test func pythonSSLClientChatsOneByteAtATime() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags)
        let bob = try LineClient.join("bob", "room", port: node.port)
        // Every byte its own TLS record (and its own read on the node); then one large read
        // of many messages at once.
        let script = """
            import socket, ssl, sys
            ctx = ssl.create_default_context(cafile=sys.argv[2])
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
            for b in b"carol_room\\n":
                s.sendall(bytes([b]))
            f = s.makefile("rb")
            print(f.readline().decode().strip(), flush=True)
            for b in b"byte by byte\\n":
                s.sendall(bytes([b]))
            s.sendall(b"".join(b"burst %d\\n" % i for i in range(40)))
            while True:
                line = f.readline()
                if not line:
                    break
                print(line.decode().strip(), flush=True)
            """
        let py = try InteractiveChild("python ssl", "/usr/bin/python3", ["-c", script, "\(node.port)", certs.ca])
        try py.expectOutput("200\n")
        try expectNextLine(bob, "carol - byte by byte")
        for i in 0..<40 { try expectNextLine(bob, "carol - burst \(i)") }
        try bob.send("seen\n")
        try py.expectOutput("bob - seen\n")
        try node.stop()
    }

    @Test func ourClientWithTLSChats() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags)
        let bob = try LineClient.join("bob", "room", port: node.port)
        let ours = try InteractiveChild("tcp_chat client --tls", try NodeBinary.path(),
                                        ["client", "-a", "localhost", "-p", "\(node.port)", "-u", "dave", "-c", "room",
                                         "--tls", "--tls-ca", certs.ca])
        try ours.expectOutput("Connected to")
        try ours.write("hi from our client\n")
        try expectNextLine(bob, "dave - hi from our client")
        try bob.send("hi dave\n")
        try ours.expectOutput("bob - hi dave")
        ours.closeInput()
        let (code, stderr) = try ours.finish()
        #expect(code == 0, "client exit \(code): \(stderr)")
        try node.stop()
    }

    @Test func requiredTLSRefusesPlaintextClients() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags + ["--tls-clients", "required"])
        let plain = try LineClient.connect(port: node.port)
        try plain.send("mallory_room\n")
        #expect(try plain.readLine().hasPrefix("* this node accepts clients over TLS only"))
        _ = try plain.expectClosed()
        let tls = try sClient(port: node.port, ca: certs.ca)
        try tls.write("alice_room\n")
        try tls.expectOutput("200\n")
        try node.stop()
    }

    // MARK: Client-side refusals: one sentence, non-zero exit

    private func clientRefusal(_ flags: [String], ca: String, host: String = "localhost") throws -> String {
        let node = try NodeProcess(flags)
        let ours = try InteractiveChild("tcp_chat client --tls", try NodeBinary.path(),
                                        ["client", "-a", host, "-p", "\(node.port)", "-u", "eve", "-c", "room", "--tls-ca", ca])
        let (code, stderr) = try ours.finish()
        #expect(code == 1, "expected exit 1, got \(code): \(stderr)")
        #expect(stderr.split(separator: "\n").count == 1, "one sentence expected: \(stderr)")
        #expect(stderr.hasPrefix("Cannot connect securely to \(host):\(node.port): "), "\(stderr)")
        #expect(node.isRunning)
        try node.stop()
        return stderr
    }

    @Test func clientRefusesACertificateFromAnotherCA() throws {
        let certs = try TLSCerts()
        let why = try clientRefusal(certs.serverFlags, ca: certs.otherCA)
        // The node sends its chain with the root: either way the chain does not lead to the CA given.
        #expect(why.contains("unable to get local issuer certificate") || why.contains("self-signed certificate in certificate chain"),
                "\(why)")
    }

    @Test func clientRefusesAnExpiredCertificate() throws {
        let certs = try TLSCerts()
        let why = try clientRefusal(["--tls-cert", certs.expiredCert, "--tls-key", certs.key], ca: certs.ca)
        #expect(why.contains("certificate has expired"), "\(why)")
    }

    @Test func clientRefusesACertificateForAnotherName() throws {
        let certs = try TLSCerts()
        let why = try clientRefusal(["--tls-cert", certs.wrongNameCert, "--tls-key", certs.key], ca: certs.ca)
        #expect(why.contains("mismatch"), "\(why)")
    }

    @Test func clientRefusesAPlaintextNode() throws {
        let certs = try TLSCerts()
        let why = try clientRefusal([], ca: certs.ca)
        #expect(why.contains("TLS"), "\(why)")
    }

    // MARK: Hostile and broken handshakes

    @Test func aStalledTLSHandshakeTimesOut() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags + ["--handshake-timeout", "1", "--log-level", "notice"])
        let c = try LineClient.connect(port: node.port)
        try c.send(bytes: [0x16, 0x03, 0x01])  // a record header's start, then nothing
        _ = try c.expectClosed(timeout: .seconds(5))
        #expect(node.stderr.contains("handshake timeout"), "\(node.stderrTail)")
        try node.stop()
    }

    @Test func threeHundredConnectionsOfJunkAfter0x16() throws {
        let certs = try TLSCerts()
        // Under AddressSanitizer freed memory sits in a quarantine and RSS only grows: turn
        // it off for this node, so its RSS means what it means in a normal build.
        var env = ProcessInfo.processInfo.environment
        env["ASAN_OPTIONS"] = (env["ASAN_OPTIONS"].map { $0 + ":" } ?? "") + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
        let node = try NodeProcess(certs.serverFlags + ["--log-level", "warning"], environment: env)
        var rng = SplitMix64(seed: 12)
        // Warm up: the first TLS connection loads OpenSSL's tables.
        let warm = try sClient(port: node.port, ca: certs.ca)
        try warm.write("warm_room\n")
        try warm.expectOutput("200\n")
        let before = residentKiB(node.pid) ?? 0
        var perRound: [Int] = []
        for round in 0..<3 {
            var clients: [LineClient] = []
            for i in 0..<100 {
                let c = try LineClient.connect(port: node.port, label: "junk#\(round)-\(i)")
                var junk: [UInt8] = [0x16]
                for _ in 0..<(200 + Int(rng.next() % 2000)) { junk.append(UInt8(truncatingIfNeeded: rng.next())) }
                // Some look like a record header with a huge length, which must not make the
                // node wait for (or buffer) it beyond the TLS handshake cap.
                if i % 3 == 0 { junk[1...4] = [0x03, 0x03, 0xff, 0xff] }
                _ = try c.trySend(bytes: junk[...])
                clients.append(c)
            }
            for c in clients {
                // Closed by the node (a bad record header fails at once), or, for a plausible
                // header waiting for its body, still open and costing only its bytes.
                _ = try? c.expectClosed(timeout: .milliseconds(200))
                c.close()
            }
            perRound.append(residentKiB(node.pid) ?? 0)
        }
        // Still serving, and in a bounded amount of memory.
        let alice = try LineClient.join("alice", "room", port: node.port)
        try alice.send("still here\n")
        try expectNextLine(alice, "alice - still here")
        let after = residentKiB(node.pid) ?? 0
        print("tls junk: RSS \(before) KiB before, \(perRound) KiB after each 100 junk connections, \(after) KiB at the end")
        #expect(after - before < 16 * 1024, "RSS grew from \(before) to \(after) KiB")
        // Flat once warm: the third hundred costs (almost) nothing more than the second.
        #expect(perRound[2] - perRound[1] < 2 * 1024, "RSS per round of 100 junk connections: \(perRound)")
        #expect(node.isRunning)
        try node.stop()
    }

    @Test func aHandshakeThatNeverEndsIsCutAtTheCap() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags + ["--log-level", "notice"])
        let c = try LineClient.connect(port: node.port)
        // A ClientHello that announces 16 MiB and keeps coming in well-formed 16 KiB records.
        var sent = 0
        var first = true
        while sent < 256 * 1024 {
            var record: [UInt8] = [0x16, 0x03, 0x01, 0x40, 0x00]
            var body = [UInt8](repeating: 0x41, count: 16384)
            if first { body[0...3] = [0x01, 0xff, 0xff, 0xff]; first = false }
            record += body
            do { try c.send(bytes: record, timeout: .seconds(2)) } catch { break }
            sent += record.count
        }
        _ = try c.expectClosed(timeout: .seconds(5))
        _ = try retry(for: .seconds(5), "the node to log the failed TLS handshake") {
            node.stderr.contains("TLS handshake failed") ? true : nil
        }
        // Cut by OpenSSL (the announced length is over its ClientHello limit) when the first
        // record arrives on its own, or by the node's 32 KiB cap (Limits.maxTLSHandshakeBytes)
        // when the first read already holds more: either way at most 32 KiB was taken in.
        let line = node.stderr.split(separator: "\n").first { $0.contains("TLS handshake failed") } ?? ""
        #expect(line.contains("excessive message size") || line.contains("TLS handshake over 32768 bytes"), "\(line)")
        #expect(node.isRunning)
        try node.stop()
    }

    @Test func sixHundredTLSSessionsLeaveMemoryFlat() throws {
        let certs = try TLSCerts()
        var env = ProcessInfo.processInfo.environment
        env["ASAN_OPTIONS"] = (env["ASAN_OPTIONS"].map { $0 + ":" } ?? "") + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
        let node = try NodeProcess(certs.serverFlags + ["--log-level", "warning"], environment: env)
        // Each session: TLS handshake, login, one message, close (half with close_notify,
        // half by dropping the socket). 150 to warm up, then 450 more.
        let script = """
            import socket, ssl, sys
            ctx = ssl.create_default_context(cafile=sys.argv[2])
            def session(i):
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
                s.sendall(b"u%d_room\\n" % i)
                f = s.makefile("rb")
                assert f.readline() == b"200\\n"
                s.sendall(b"bye\\n")
                assert f.readline() == b"u%d - bye\\n" % i
                if i % 2:
                    s = s.unwrap()
                s.close()
            for i in range(150):
                session(i)
            print("warm", flush=True)
            sys.stdin.readline()
            for i in range(150, 600):
                session(i)
            print("done", flush=True)
            """
        let py = try InteractiveChild("python ssl sessions", "/usr/bin/python3", ["-c", script, "\(node.port)", certs.ca])
        try py.expectOutput("warm\n", timeout: .seconds(60))
        let warm = residentKiB(node.pid) ?? 0
        try py.write("go\n")
        try py.expectOutput("done\n", timeout: .seconds(120))
        let after = residentKiB(node.pid) ?? 0
        print("tls sessions: RSS \(warm) KiB after 150 sessions, \(after) KiB after 600")
        #expect(after - warm < 4 * 1024, "450 more TLS sessions grew the node from \(warm) to \(after) KiB")
        // And a clean stop: under LeakSanitizer a leaked SSL object makes this non-zero.
        #expect(try node.stop() == 0)
    }

    @Test func plaintextChatClientsAndNcStillWorkOnATLSPort() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags)
        let a = try LineClient.join("alice", "room", port: node.port)
        let b = try LineClient.join("bob", "room", port: node.port)
        try a.send("plain\n")
        try expectNextLine(b, "alice - plain")
        try node.stop()
    }

    @Test func statusOverTLS() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags)
        let status = try InteractiveChild("tcp_chat status --tls", try NodeBinary.path(),
                                          ["status", "-a", "localhost", "-p", "\(node.port)", "--tls-ca", certs.ca, "--json"])
        let (code, stderr) = try status.finish()
        #expect(code == 0, "\(stderr)")
        #expect(status.out.text.contains("\"listen\""), "\(status.out.text)")
        try node.stop()
    }

    @Test func benchOverTLSChecksEveryDelivery() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags + ["--rate-limit", "0", "--tls-clients", "required"])
        let bench = try InteractiveChild("tcp_chat bench --tls", try NodeBinary.path(),
                                         ["bench", "--target", "localhost:\(node.port)", "--tls-ca", certs.ca, "--clients", "6",
                                          "--senders", "2", "--duration", "1", "--warmup", "0.2", "--drain", "0.5", "--json", "--no-progress"])
        let (code, stderr) = try bench.finish(timeout: .seconds(30))
        #expect(code == 0, "bench exit \(code): \(stderr)")
        #expect(bench.out.text.contains("\"ok\":true") && bench.out.text.contains("\"tls\":true"), "\(bench.out.text)")
        // A node with TLS required refuses plaintext clients: the run really was TLS.
        #expect(node.stderr.contains("plaintext client") == false, "\(node.stderrTail)")
        try node.stop()
    }

    @Test func metricsShowTheCertificateExpiry() throws {
        let certs = try TLSCerts()
        let port = try pickFreePorts(1)[0]
        let node = try NodeProcess(certs.serverFlags + ["--metrics", "127.0.0.1:\(port)"])
        let junk = try LineClient.connect(port: node.port)
        try junk.send(bytes: [0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        _ = try junk.expectClosed()
        let m = try scrape(port)
        let left = m["tcp_chat_tls_certificate_expiry_seconds"] ?? -1
        // Issued for 30 days a few seconds ago.
        #expect(left > 29 * 86400 && left <= 30 * 86400, "expiry gauge \(left)")
        #expect((m["tcp_chat_tls_handshake_failures_total"] ?? 0) >= 1, "\(m.filter { $0.key.contains("tls") })")
        try node.stop()
    }

    // MARK: Rotation

    @Test func sighupRotatesCertificatesForNewConnections() throws {
        let certs = try TLSCerts()
        let node = try NodeProcess(certs.serverFlags + ["--log-level", "notice"])
        let old = try sClient(port: node.port, ca: certs.ca)
        try old.write("old_room\n")
        try old.expectOutput("200\n")
        // A key that does not match: the reload is refused and the old certificate stays.
        try FileManager.default.removeItem(atPath: certs.key)
        try FileManager.default.copyItem(atPath: certs.otherKey, toPath: certs.key)
        node.send(signal: SIGHUP)
        _ = try retry(for: .seconds(5), "the node to log the failed reload") {
            node.stderr.contains("TLS reload failed") ? true : nil
        }
        let still = try sClient(port: node.port, ca: certs.ca)
        try still.write("still_room\n")
        try still.expectOutput("200\n")
        // A new certificate from the other CA with its key: new connections get it.
        try FileManager.default.removeItem(atPath: certs.cert)
        try FileManager.default.copyItem(atPath: certs.otherCert, toPath: certs.cert)
        node.send(signal: SIGHUP)
        _ = try retry(for: .seconds(5), "the node to log the reload") {
            node.stderr.contains("TLS certificates reloaded") ? true : nil
        }
        let fresh = try sClient(port: node.port, ca: certs.otherCA)
        try fresh.write("fresh_room\n")
        try fresh.expectOutput("200\n")
        // The session opened before both reloads is untouched.
        try old.write("after rotation\n")
        try old.expectOutput("old - after rotation\n")
        try node.stop()
    }
}
