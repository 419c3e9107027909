// fuzz-repartition: the repartition record decoders (KappaStreams/RepartitionRecord.swift:
// RepartitionRecord.decode, .contribution, EventReader), as an owner task reads records
// other tasks sent it.
//
// Input: `RepartitionCase`: the job (whose plan says how many sources there are and
// how many numeric fields a window partial carries), the record key, the record value.
// Seeds are records from the repartition topics of the shipped jobs.
//
// Invariants checked besides "no crash, no out-of-bounds read":
// - a decoded record names a source in range (the owner indexes arrays with it);
// - events come in strictly increasing offsets (the owner drops copies by offset);
// - what decodes re-encodes (the production encoders: encodeContribution,
//   encodeWatermark, EventBundle) into a record that decodes to the same values.
import FuzzSupport
import KappaCore
import KappaFormat
@testable import KappaStreams

nonisolated(unsafe) let writer = ByteWriter(capacity: 1 << 12)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRepartition(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(UnsafeRawBufferPointer(start: data, count: size))
    let job = FuzzJob.all[Int(input.byte()) % FuzzJob.all.count]
    let keyBytes = exactCopy(input.chunk())
    defer { keyBytes.deallocate() }
    let value = exactCopy(input.rest())
    defer { value.deallocate() }
    let plan = job.plan
    var fields = 0
    if case .window(let w) = job.definition.operation { fields = w.fields.count }
    let key = keyBytes.isEmpty ? nil : UnsafeRawBufferPointer(keyBytes)
    let decoded: RepartitionRecord.Decoded
    do throws(RepartitionRecord.Failure) {
        decoded = try RepartitionRecord.decode(value: UnsafeRawBufferPointer(value), sources: plan.sourceCount)
    } catch {
        return 0
    }
    require(decoded.source >= 0 && decoded.source < plan.sourceCount, "source \(decoded.source) of \(plan.sourceCount)")
    switch decoded.kind {
    case .watermark:
        RepartitionRecord.encodeWatermark(source: decoded.source, streamTime: TimestampNanos(decoded.sequence), idle: decoded.idle, into: writer)
        let again = try? RepartitionRecord.decode(value: writer.bytes, sources: plan.sourceCount)  // nil fails below
        require(again.map { ($0.kind, $0.source, $0.sequence, $0.idle) == (.watermark, decoded.source, decoded.sequence, decoded.idle) } ?? false,
                "a watermark does not survive a round trip")
    case .contribution:
        checkContribution(decoded, key: key, fields: fields, sources: plan.sourceCount)
    case .events:
        checkEvents(decoded, sources: plan.sourceCount)
    }
    return 0
}

func checkContribution(_ d: RepartitionRecord.Decoded, key: UnsafeRawBufferPointer?, fields: Int, sources: Int32) {
    let c: Contribution
    do throws(RepartitionRecord.Failure) {
        c = Contribution(try RepartitionRecord.contribution(key: key, d, fields: fields))
    } catch {
        return
    }
    _ = c.lineage.header(topic: "rides")
    c.withRef { RepartitionRecord.encodeContribution($0, into: writer) }
    var k = c.key
    let again: Contribution? = k.withUTF8 { keyBytes in
        guard let d2 = try? RepartitionRecord.decode(value: writer.bytes, sources: sources) else { return nil }  // nil fails below
        return (try? RepartitionRecord.contribution(key: keyBytes.isEmpty ? nil : UnsafeRawBufferPointer(keyBytes), d2, fields: fields)).map(Contribution.init)
    }
    require(again == c, "a window partial does not survive a round trip: \(c) -> \(String(describing: again))")
}

struct Event: Equatable {
    var key: [UInt8]
    var offset: Int64
    var time: TimestampNanos
    var text: [UInt8]?
}

func checkEvents(_ d: RepartitionRecord.Decoded, sources: Int32) {
    guard let (kind, events) = readEvents(d.body) else { return }
    for i in events.indices.dropFirst() {
        require(events[i].offset > events[i - 1].offset, "event offsets \(events[i - 1].offset) then \(events[i].offset)")
    }
    require(kind == .session || events.allSatisfy { $0.text != nil }, "a \(kind) without its id")
    let bundle = EventBundle()
    bundle.begin(source: d.source, event: kind, offset: events[0].offset, time: events[0].time)
    for e in events {
        e.key.withUnsafeBytes { k in
            if let text = e.text {
                text.withUnsafeBytes { bundle.add(key: k, offset: e.offset, time: e.time, text: $0) }
            } else {
                bundle.add(key: k, offset: e.offset, time: e.time, text: nil)
            }
        }
    }
    let record = exactCopy(bundle.finish())
    defer { record.deallocate() }
    guard let d2 = try? RepartitionRecord.decode(value: UnsafeRawBufferPointer(record), sources: sources),  // nil fails below
          let (kind2, events2) = readEvents(d2.body) else {
        require(false, "re-encoded events do not decode")
        return
    }
    require(d2.source == d.source && kind2 == kind && events2 == events, "events do not survive a round trip")
}

/// Every event of an events record, or nil when the record is refused.
func readEvents(_ body: UnsafeRawBufferPointer) -> (RepartitionRecord.Event, [Event])? {
    do throws(RepartitionRecord.Failure) {
        var reader = try EventReader(body)
        var out: [Event] = []
        while let e = try reader.next() {
            out.append(Event(key: Array(e.key), offset: e.offset, time: e.time, text: e.text.map { Array($0) }))
        }
        return (reader.event, out)
    } catch {
        return nil
    }
}
