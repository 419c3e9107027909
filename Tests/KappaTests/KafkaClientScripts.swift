import KappaCore

// Python scripts the `kappa serve` tests run with real Kafka clients. Each prints JSON
// Lines on stdout for the test to check, and exits non-zero (with a traceback on
// stderr) when the client reports an error.

enum KafkaScripts {
    /// The records the round-trip tests produce: record `i` of `n`, deterministic, with
    /// null keys, non-JSON values (one with a newline), headers and explicit timestamps.
    /// `KafkaRecordSpec` in Swift computes the same.
    static let recordSpec = """
    import json, base64
    BASE_MS = 1700000000000
    def spec(i):
        key = None if i % 10 == 0 else ("k%d" % i)
        if i % 7 == 0:
            value = ("plain text %d" % i) if i % 2 == 0 else ("line\\nbreak %d" % i)
        else:
            value = json.dumps({"i": i, "s": "v%d" % i}, separators=(",", ":"))
        headers = [("h", ("v%d" % i).encode())] if i % 3 == 0 else []
        ts = BASE_MS + i * 1000 + (i % 5)
        return key, value.encode(), headers, ts

    def emit(client, m_partition, m_offset, key, value, headers, ts):
        print(json.dumps({"client": client, "partition": m_partition, "offset": m_offset,
                          "key": None if key is None else key.decode(),
                          "value": value.decode() if value is not None else None,
                          "headers": [[k, (v or b"").decode()] for k, v in (headers or [])],
                          "timestamp": ts}), flush=True)
    """

    /// argv: client bootstrap topic n group. Produces n records with `client`, then
    /// consumes the topic through group `group` until it has n records, printing each.
    static let roundTrip = recordSpec + """

    import sys, time, asyncio
    client, bs, topic, n, group = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    deadline = time.time() + 90

    if client == "confluent":
        from confluent_kafka import Producer, Consumer
        errors = []
        p = Producer({"bootstrap.servers": bs, "compression.type": "lz4", "enable.idempotence": True, "linger.ms": 5})
        for i in range(n):
            k, v, h, ts = spec(i)
            p.produce(topic, key=k, value=v, headers=h, timestamp=ts, on_delivery=lambda err, m: errors.append(err) if err else None)
        assert p.flush(60) == 0, "undelivered"
        assert not errors, errors
        c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        got = 0
        while got < n and time.time() < deadline:
            m = c.poll(0.5)
            if m is None: continue
            if m.error(): raise Exception(str(m.error()))
            emit(client, m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1])
            got += 1
        c.commit(asynchronous=False)
        c.close()
    elif client == "kafka-python":
        from kafka import KafkaProducer, KafkaConsumer
        p = KafkaProducer(bootstrap_servers=bs)  # defaults: idempotence on
        futures = []
        for i in range(n):
            k, v, h, ts = spec(i)
            futures.append(p.send(topic, key=None if k is None else k.encode(), value=v, headers=h, timestamp_ms=ts))
        for f in futures: f.get(timeout=60)
        p.close()
        c = KafkaConsumer(topic, bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
        got = 0
        while got < n and time.time() < deadline:
            for tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    emit(client, m.partition, m.offset, m.key, m.value, m.headers, m.timestamp)
                    got += 1
        c.commit()
        c.close()
    elif client == "aiokafka":
        from aiokafka import AIOKafkaProducer, AIOKafkaConsumer
        async def main():
            p = AIOKafkaProducer(bootstrap_servers=bs, compression_type="lz4", enable_idempotence=True)
            await p.start()
            futures = []
            for i in range(n):
                k, v, h, ts = spec(i)
                futures.append(await p.send(topic, key=None if k is None else k.encode(), value=v, headers=h, timestamp_ms=ts))
            for f in futures: await f
            await p.stop()
            c = AIOKafkaConsumer(topic, bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
            await c.start()
            got = 0
            try:
                while got < n and time.time() < deadline:
                    for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                        for m in msgs:
                            emit(client, m.partition, m.offset, m.key, m.value, m.headers, m.timestamp)
                            got += 1
                await c.commit()
            finally:
                await c.stop()
        asyncio.run(main())
    else:
        raise SystemExit("unknown client " + client)
    """

    /// argv: bootstrap topic group phase n. Phase "split": two confluent-kafka members of
    /// `group` wait until they share the topic's 4 partitions 2 and 2, then read the n
    /// records produced after that, commit and leave. Phase "resume": a kafka-python member
    /// reads until it has n records and 2 quiet seconds more, commits and leaves.
    static let group = """
    import sys, json, time
    bs, topic, group, phase, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    deadline = time.time() + 90
    def emit(**kw): print(json.dumps(kw), flush=True)

    if phase == "split":
        from confluent_kafka import Consumer, Producer, TopicPartition
        conf = {"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "session.timeout.ms": 6000, "heartbeat.interval.ms": 300, "partition.assignment.strategy": "range"}
        a, b = Consumer(dict(conf, **{"client.id": "member-a"})), Consumer(dict(conf, **{"client.id": "member-b"}))
        a.subscribe([topic]); b.subscribe([topic])
        # Wait until the group is stable with two members, two partitions each.
        while time.time() < deadline:
            for c in (a, b):
                m = c.poll(0.2)
                if m is not None and not m.error(): raise Exception("a record before anything was produced")
            pa = {p.partition for p in a.assignment()}; pb = {p.partition for p in b.assignment()}
            if len(pa) == 2 and len(pb) == 2 and pa | pb == {0, 1, 2, 3}: break
        else:
            raise Exception("the group never split the partitions 2 and 2")
        emit(event="assigned", a=sorted(pa), b=sorted(pb))
        p = Producer({"bootstrap.servers": bs, "partitioner": "murmur2_random"})
        for i in range(n): p.produce(topic, key="user-%d" % i, value='{"i":%d}' % i)
        assert p.flush(30) == 0
        got = 0
        while got < n and time.time() < deadline:
            for name, c in (("a", a), ("b", b)):
                m = c.poll(0.1)
                if m is None: continue
                if m.error(): raise Exception(str(m.error()))
                emit(event="record", member=name, partition=m.partition(), offset=m.offset(), value=m.value().decode())
                got += 1
        a.commit(asynchronous=False); b.commit(asynchronous=False)
        emit(event="committed", a=[[t.partition, t.offset] for t in a.committed(a.assignment())], b=[[t.partition, t.offset] for t in b.committed(b.assignment())])
        a.close(); b.close()
    elif phase == "resume":
        from kafka import KafkaConsumer
        c = KafkaConsumer(topic, bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, client_id="member-c")
        got, quiet_until = 0, None
        while time.time() < deadline:
            for tp, msgs in c.poll(timeout_ms=300).items():
                for m in msgs:
                    emit(event="record", member="c", partition=m.partition, offset=m.offset, value=m.value.decode())
                    got += 1
            if got >= n and quiet_until is None: quiet_until = time.time() + 2  # then watch for anything extra
            if quiet_until is not None and time.time() > quiet_until: break
        c.commit(); c.close()
    """

    /// argv: bootstrap topic group role session_ms. A confluent-kafka member that prints
    /// its partitions whenever they change; the "survivor" exits once it holds all 4
    /// after having shared them, the "victim" runs until it is killed.
    static let member = """
    import sys, json, time
    from confluent_kafka import Consumer
    bs, topic, group, role, session = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "client.id": role, "session.timeout.ms": session,
                  "heartbeat.interval.ms": 200, "partition.assignment.strategy": "range", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    last, had_fewer, deadline = None, False, time.time() + 120
    while time.time() < deadline:
        c.poll(0.1)
        now = sorted(p.partition for p in c.assignment())
        if now != last:
            print(json.dumps({"role": role, "partitions": now}), flush=True)
            last = now
            if 0 < len(now) < 4: had_fewer = True
        if role == "survivor" and had_fewer and len(now) == 4: break
    c.close()
    """

    /// argv: bootstrap topic. Waits at the end of partition 0 with a 30 s fetch wait,
    /// prints "ready" after 2 s of waiting, then the first record that arrives; gives up
    /// after 25 s (before the fetch wait could have ended by itself).
    static let waitOne = """
    import sys, json, time
    from confluent_kafka import Consumer, TopicPartition, OFFSET_END
    bs, topic = sys.argv[1], sys.argv[2]
    c = Consumer({"bootstrap.servers": bs, "group.id": "unused", "enable.auto.commit": False, "fetch.wait.max.ms": 30000})
    c.assign([TopicPartition(topic, 0, OFFSET_END)])
    start = time.time()
    ready = False
    while time.time() - start < 25:
        m = c.poll(0.1)
        if not ready and time.time() - start > 2:
            print(json.dumps({"event": "ready"}), flush=True)
            ready = True
        if m is None: continue
        if m.error(): raise Exception(str(m.error()))
        print(json.dumps({"event": "record", "value": m.value().decode(), "waited": time.time() - start}), flush=True)
        break
    c.close()
    """

    /// argv: bootstrap topic ms... The offset `offsets_for_times` gives for each
    /// timestamp in partition 0 (-1: none that late).
    static let offsetsForTimes = """
    import sys, json
    from confluent_kafka import Consumer, TopicPartition
    bs, topic, times = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3:]]
    c = Consumer({"bootstrap.servers": bs, "group.id": "unused"})
    for t in times:
        r = c.offsets_for_times([TopicPartition(topic, 0, t)], timeout=10)[0]
        if r.error: raise Exception(str(r.error))
        print(json.dumps({"timestamp": t, "offset": r.offset}), flush=True)
    c.close()
    """

    /// argv: bootstrap. Creates, lists and deletes topics with confluent-kafka's AdminClient.
    static let admin = """
    import sys, json
    from confluent_kafka.admin import AdminClient, NewTopic
    bs, action, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    a = AdminClient({"bootstrap.servers": bs})
    if action == "create":
        fs = a.create_topics([NewTopic(n, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"}) for n in names])
    else:
        fs = a.delete_topics(names)
    for n, f in fs.items():
        try:
            f.result(10)
            print(json.dumps({"topic": n, "error": None}), flush=True)
        except Exception as e:
            print(json.dumps({"topic": n, "error": e.args[0].name()}), flush=True)
    """

    /// argv: bootstrap topic. `kappa consume`-like dump of a topic with a read_committed
    /// confluent-kafka consumer: every record up to the end it reports.
    static let readCommitted = """
    import sys, json
    from confluent_kafka import Consumer, TopicPartition
    bs, topic, isolation = sys.argv[1], sys.argv[2], sys.argv[3]
    c = Consumer({"bootstrap.servers": bs, "group.id": "unused", "enable.partition.eof": True, "isolation.level": isolation})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    eof = set()
    while len(eof) < len(parts):
        m = c.poll(5)
        if m is None: raise Exception("no end of partition reported")
        if m.error():
            if m.error().code() == -191: eof.add(m.partition()); continue
            raise Exception(str(m.error()))
        print(json.dumps({"partition": m.partition(), "offset": m.offset(), "key": m.key().decode() if m.key() else None, "value": m.value().decode()}), flush=True)
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        print(json.dumps({"partition": p, "low": lo, "high": hi}), flush=True)
    c.close()
    """

    /// argv: bootstrap topic n. Reads n records of the topic (no group) with
    /// confluent-kafka; prints partition, offset, key, timestamp and the kappa.ns header.
    static let readAll = """
    import sys, json, time, struct
    from confluent_kafka import Consumer, TopicPartition
    bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    c = Consumer({"bootstrap.servers": bs, "group.id": "unused", "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    got, deadline = 0, time.time() + 60
    while got < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None: continue
        if m.error(): raise Exception(str(m.error()))
        ns = [struct.unpack(">i", v)[0] for k, v in (m.headers() or []) if k == "kappa.ns"]
        print(json.dumps({"partition": m.partition(), "offset": m.offset(), "key": m.key().decode() if m.key() else None,
                          "timestamp": m.timestamp()[1], "kappa_ns": ns[0] if ns else None}), flush=True)
        got += 1
    c.close()
    """
}

/// The records `KafkaScripts.recordSpec` produces, computed in Swift.
struct KafkaRecordSpec: Equatable, Hashable {
    var key: String?
    var value: String
    var headers: [[String]]
    var timestampMillis: Int64

    static let baseMillis: Int64 = 1_700_000_000_000

    init(key: String?, value: String, headers: [[String]], timestampMillis: Int64) {
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMillis = timestampMillis
    }

    init(_ i: Int) {
        key = i % 10 == 0 ? nil : "k\(i)"
        if i % 7 == 0 {
            value = i % 2 == 0 ? "plain text \(i)" : "line\nbreak \(i)"
        } else {
            value = "{\"i\":\(i),\"s\":\"v\(i)\"}"
        }
        headers = i % 3 == 0 ? [["h", "v\(i)"]] : []
        timestampMillis = Self.baseMillis + Int64(i) * 1000 + Int64(i % 5)
    }

    var isJSON: Bool { value.hasPrefix("{") }

    /// What `consume --with-meta` prints as the timestamp: Kafka milliseconds in seconds.
    var decimalSeconds: String { TimestampNanos(millis: timestampMillis).decimalSeconds }
}
