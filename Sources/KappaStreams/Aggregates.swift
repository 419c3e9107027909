import KappaCore

/// The running aggregates of one (key, window): `count` plus, per numeric field, how
/// many events had a number there, their exact sum, min and max. Merging two states is
/// associative and commutative (exact decimals), so pre-aggregates from several
/// partitions combine to the same bits in any order.
public struct AggregateState: Equatable, Sendable {
    /// One numeric field's running aggregates.
    public struct Field: Equatable, Sendable {
        public var count: Int64 = 0
        public var sum = Decimal9(raw: 0)
        public var min = Decimal9(raw: .max)
        public var max = Decimal9(raw: .min)
    }

    public var count: Int64 = 0
    /// Per numeric field, in one array: one allocation per state, one uniqueness check
    /// per event.
    public var fields: [Field]

    public init(fields: Int) {
        self.fields = Array(repeating: Field(), count: fields)
    }

    public var fieldCounts: [Int64] { fields.map(\.count) }
    public var sums: [Decimal9] { fields.map(\.sum) }
    public var mins: [Decimal9] { fields.map(\.min) }
    public var maxs: [Decimal9] { fields.map(\.max) }

    /// Adds one event; `values[i]` nil when field i is missing, null or not a number.
    @inline(__always)
    public mutating func add(_ values: UnsafeBufferPointer<Decimal9?>) {
        count += 1
        fields.withUnsafeMutableBufferPointer { f in
            for i in 0..<f.count {
                guard let v = values[i] else { continue }
                f[i].count += 1
                f[i].sum = f[i].sum + v
                if v < f[i].min { f[i].min = v }
                if v > f[i].max { f[i].max = v }
            }
        }
    }

    public mutating func merge(_ o: AggregateState) {
        count += o.count
        for i in fields.indices {
            let b = o.fields[i]
            fields[i].count += b.count
            fields[i].sum = fields[i].sum + b.sum
            if b.min < fields[i].min { fields[i].min = b.min }
            if b.max > fields[i].max { fields[i].max = b.max }
        }
    }

    /// Appends `"name":value` pairs (with leading commas) for the job's aggregates.
    func appendJSON(_ layout: AggregateLayout, to out: ByteWriter) {
        for item in layout.items {
            out.append(item.prefix)
            guard let i = item.field else {
                out.appendInteger(count)
                continue
            }
            let field = fields[i]
            guard field.count > 0 else {
                out.append(item.kind == .sum ? AggregateLayout.zero : AggregateLayout.null)
                continue
            }
            switch item.kind {
            case .sum: field.sum.append(to: out)
            case .min: field.min.append(to: out)
            case .max: field.max.append(to: out)
            case .avg: field.sum.divided(by: field.count).append(to: out)
            case .count: out.appendInteger(count)
            }
        }
    }

    func encode(into w: ByteWriter) {
        w.put(count)
        for f in fields {
            w.put(f.count)
            w.put(f.sum)
            w.put(f.min)
            w.put(f.max)
        }
    }

    static func decode(_ r: inout StateReader, fields: Int) throws(StateReader.Failure) -> AggregateState {
        var s = AggregateState(fields: fields)
        s.count = try r.int64()
        for i in 0..<fields {
            s.fields[i].count = try r.int64()
            s.fields[i].sum = try r.decimal()
            s.fields[i].min = try r.decimal()
            s.fields[i].max = try r.decimal()
        }
        return s
    }
}

/// How a window job's aggregates appear in its results, worked out once per job: each
/// aggregate's JSON prefix (`,"sum_fare":`) and the numeric field it reads.
public struct AggregateLayout: Sendable {
    struct Item: Sendable {
        var kind: AggregateSpec.Kind
        var field: Int?  // index in the job's numeric fields; nil for count
        var prefix: [UInt8]
    }

    let items: [Item]
    static let zero = Array("0".utf8)
    static let null = Array("null".utf8)

    public init(_ spec: WindowSpec) {
        let fields = spec.fields
        items = spec.aggregates.map { a in
            Item(kind: a.kind, field: a.field.map { fields.firstIndex(of: $0)! }, prefix: Array(",\"\(a.outputName)\":".utf8))
        }
    }
}

/// Which input records a result came from: per input partition, the first and last
/// offset folded in. Carried on output records as the `kappa.input` header. Almost
/// every result comes from one partition, so the first range is stored inline and only
/// further partitions allocate.
public struct Lineage: Equatable, Sendable {
    private var first: (partition: Int32, low: Int64, high: Int64)?
    private var more: [Int32: ClosedRange<Int64>]?

    public init() {}

    public static func == (a: Lineage, b: Lineage) -> Bool { a.ranges == b.ranges }

    public var ranges: [Int32: ClosedRange<Int64>] {
        var out = more ?? [:]
        if let f = first { out[f.partition] = f.low...f.high }
        return out
    }

    @inline(__always)
    public mutating func add(partition: Int32, offset: Int64) {
        if var f = first {
            if f.partition == partition {
                if offset < f.low { f.low = offset } else if offset > f.high { f.high = offset }
                first = f
                return
            }
            var m = more ?? [:]
            if let r = m[partition] {
                m[partition] = min(r.lowerBound, offset)...max(r.upperBound, offset)
            } else {
                m[partition] = offset...offset
            }
            more = m
        } else {
            first = (partition, offset, offset)
        }
    }

    public mutating func merge(_ o: Lineage) {
        if o.more == nil, let f = o.first {  // the common case: one partition, no dictionary
            add(partition: f.partition, offset: f.low)
            add(partition: f.partition, offset: f.high)
            return
        }
        for (p, r) in o.ranges {
            add(partition: p, offset: r.lowerBound)
            add(partition: p, offset: r.upperBound)
        }
    }

    /// `topic/p:first-last,…`, partitions ascending.
    public func header(topic: String) -> String {
        let w = ByteWriter(capacity: 64)
        appendHeader(topic: Array(topic.utf8), to: w)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// `header(topic:)` written into `out`; one partition (the common case) without
    /// building a dictionary.
    public func appendHeader(topic: [UInt8], to out: ByteWriter) {
        func range(_ p: Int32, _ low: Int64, _ high: Int64) {
            out.append(topic)
            out.append(UInt8(ascii: "/"))
            out.appendInteger(Int64(p))
            out.append(UInt8(ascii: ":"))
            out.appendInteger(low)
            out.append(UInt8(ascii: "-"))
            out.appendInteger(high)
        }
        if more == nil {
            if let f = first { range(f.partition, f.low, f.high) }
            return
        }
        let all = ranges
        for (i, p) in all.keys.sorted().enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            range(p, all[p]!.lowerBound, all[p]!.upperBound)
        }
    }

    func encode(into w: ByteWriter) {
        if more == nil {  // the common case, in the same bytes as below
            guard let f = first else { return w.put(0) }
            w.put(1)
            w.put(Int64(f.partition))
            w.put(f.low)
            w.put(f.high)
            return
        }
        let all = ranges
        w.put(all.count)
        for p in all.keys.sorted() {
            w.put(Int64(p))
            w.put(all[p]!.lowerBound)
            w.put(all[p]!.upperBound)
        }
    }

    static func decode(_ r: inout StateReader) throws(StateReader.Failure) -> Lineage {
        var l = Lineage()
        for _ in 0..<(try r.count(max: 1 << 16)) {
            let p = Int32(truncatingIfNeeded: try r.int64())
            let lo = try r.int64()
            let hi = try r.int64()
            guard lo <= hi else { throw StateReader.Failure(description: "lineage range \(lo)-\(hi)") }
            l.add(partition: p, offset: lo)
            l.add(partition: p, offset: hi)
        }
        return l
    }
}
