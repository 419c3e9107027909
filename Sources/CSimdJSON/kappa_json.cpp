// A small C shim over simdjson's DOM parser: validate a whole document, then extract only
// the fields a caller compiled. Swift cannot call simdjson's C++ API directly with ease,
// and the hot path wants one call per line with no allocation.
#include "kappa_json.h"
#include <simdjson.h>
#include <string>
#include <string_view>
#include <vector>
#include <charconv>
#include <cmath>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

using namespace simdjson;

struct kj_parser {
    dom::parser dom;
    ondemand::parser ondemand;
    explicit kj_parser(size_t max) : dom(max), ondemand(max) {}
};

namespace {
struct step {
    bool is_index;
    size_t index;
    std::string key;
    /// The key has no quote, backslash or control byte: comparing it with a document's
    /// raw key bytes is exact (else only the unescaped key compares right).
    bool raw_safe;
};

static bool is_raw_safe(std::string_view key) {
    for (unsigned char c : key)
        if (c == '"' || c == '\\' || c < 0x20) return false;
    return true;
}
}

struct kj_fields {
    std::vector<std::vector<step>> paths;
    /// Every path starts with a key and no two start with the same one: the lazy
    /// extraction can then walk the object once, in document order (else it validates
    /// the whole document, as kj_parse_extract).
    bool one_pass = false;
    /// For the one-pass walk: which paths' first key starts with each byte.
    uint64_t by_first_byte[256] = {};
    /// One-pass, and every path is a single key: the byte scan (scan_flat) can serve.
    bool flat = false;
    /// Each path's first key (views into `paths`, which no longer change).
    std::vector<std::string_view> first_keys;
    /// A first key of at most 16 bytes as two words, zero-padded, and the masks of its
    /// bytes: the scan compares a document's key with two masked loads (the padding makes
    /// them readable; little-endian machines only, memcmp elsewhere).
    struct key_words { uint64_t w0, w1, m0, m1; };
    std::vector<key_words> first_words;
};

static uint64_t load_word(const uint8_t *p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
}

extern "C" kj_parser *kj_parser_create(size_t max_document_bytes) {
    try {
        auto *p = new kj_parser(max_document_bytes);
        if (p->dom.allocate(max_document_bytes < 4096 ? max_document_bytes : 4096) != SUCCESS) {
            delete p;
            return nullptr;
        }
        return p;
    } catch (...) {
        return nullptr;
    }
}

extern "C" void kj_parser_destroy(kj_parser *parser) { delete parser; }

static bool compile(const char *path, std::vector<step> &out) {
    std::string_view s(path);
    if (s.empty()) return false;
    size_t i = 0;
    while (i < s.size()) {
        if (s[i] == '[') {
            size_t close = s.find(']', i);
            if (close == std::string_view::npos || close == i + 1) return false;
            size_t n = 0;
            for (size_t j = i + 1; j < close; j++) {
                if (s[j] < '0' || s[j] > '9') return false;
                n = n * 10 + size_t(s[j] - '0');
            }
            out.push_back(step{true, n, {}, true});
            i = close + 1;
            if (i < s.size() && s[i] == '.') i++;
            continue;
        }
        size_t end = i;
        while (end < s.size() && s[end] != '.' && s[end] != '[') end++;
        if (end == i) return false;
        out.push_back(step{false, 0, std::string(s.substr(i, end - i)), is_raw_safe(s.substr(i, end - i))});
        i = end;
        if (i < s.size() && s[i] == '.') i++;
    }
    return !out.empty();
}

extern "C" kj_fields *kj_fields_create(const char *const *paths, size_t count) {
    auto *f = new kj_fields();
    for (size_t i = 0; i < count; i++) {
        std::vector<step> steps;
        if (!compile(paths[i], steps)) {
            delete f;
            return nullptr;
        }
        f->paths.push_back(std::move(steps));
    }
    f->one_pass = count <= 64;
    for (size_t i = 0; i < count && f->one_pass; i++) {
        if (f->paths[i][0].is_index) f->one_pass = false;
        // The on-demand parser compares keys raw, up to a closing quote: a wanted key
        // holding a quote, a backslash or a control byte would match other bytes
        // ("a\":{\"b" matched inside {"a":{"b":1}}, fuzz-json). The DOM parser compares
        // unescaped keys.
        for (const auto &st : f->paths[i])
            if (!st.raw_safe) f->one_pass = false;
        for (size_t j = 0; j < i && f->one_pass; j++)
            if (f->paths[j][0].key == f->paths[i][0].key) f->one_pass = false;
    }
    for (const auto &path : f->paths) {
        std::string_view key = path[0].is_index ? std::string_view() : std::string_view(path[0].key);
        f->first_keys.push_back(key);
        uint8_t bytes[16] = {};
        std::memcpy(bytes, key.data(), key.size() < 16 ? key.size() : 16);
        auto mask = [](size_t n) { return n >= 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * n)) - 1; };
        const size_t n = key.size();
        f->first_words.push_back({load_word(bytes), load_word(bytes + 8), mask(n), n > 8 ? mask(n - 8) : 0});
    }
    if (f->one_pass) {
        f->flat = true;
        for (size_t i = 0; i < count; i++) {
            if (f->paths[i].size() != 1) f->flat = false;
            const std::string &key = f->paths[i][0].key;
            f->by_first_byte[uint8_t(key.empty() ? '"' : key[0])] |= uint64_t(1) << i;
        }
    }
    return f;
}

extern "C" void kj_fields_destroy(kj_fields *fields) { delete fields; }

static int find_key(ondemand::object &o, const step &s, ondemand::value &out);

// The rare path: a non-integer number's exact digits. The DOM keeps only a double, so
// walk the same path with the on-demand parser, whose raw token points into the input.
static void raw_number(kj_parser *parser, const std::vector<step> &path, const uint8_t *data,
                       size_t length, kj_value &v) {
    auto doc = parser->ondemand.iterate(reinterpret_cast<const char *>(data), length, length + KJ_PADDING);
    if (doc.error()) return;
    ondemand::value cur;
    bool first = true;
    for (const auto &s : path) {
        simdjson_result<ondemand::value> next;
        if (s.is_index) {
            next = first ? doc.at(s.index) : cur.at(s.index);
        } else {
            // find_key, not find_field: keys compared as the DOM parser compares them.
            ondemand::object obj;
            if ((first ? doc.get_object() : cur.get_object()).get(obj)) return;
            ondemand::value found;
            if (find_key(obj, s, found) != 0) return;
            next = std::move(found);
        }
        first = false;
        if (next.error()) return;
        cur = next.value_unsafe();
    }
    std::string_view raw = cur.raw_json_token();
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' || raw.back() == '\r'))
        raw.remove_suffix(1);
    v.ptr = reinterpret_cast<const uint8_t *>(raw.data());
    v.len = raw.size();
}

extern "C" int kj_parse_extract(kj_parser *parser, const kj_fields *fields, const uint8_t *data,
                                size_t length, kj_value *out) {
    dom::element root;
    auto err = parser->dom.parse(data, length, false).get(root);
    if (err) return int(err);
    if (!root.is_object()) return KJ_ERR_NOT_OBJECT;
    if (fields == nullptr) return 0;
    for (size_t i = 0; i < fields->paths.size(); i++) {
        kj_value &v = out[i];
        std::memset(&v, 0, sizeof v);
        dom::element cur = root;
        bool found = true;
        for (const auto &s : fields->paths[i]) {
            simdjson_result<dom::element> next = s.is_index ? cur.at(s.index) : cur.at_key(s.key);
            if (next.error()) {
                found = false;
                break;
            }
            cur = next.value_unsafe();
        }
        if (!found) continue;  // KJ_ABSENT
        switch (cur.type()) {
        case dom::element_type::STRING: {
            std::string_view sv = cur.get_string().value_unsafe();
            v.kind = KJ_STRING;
            v.ptr = reinterpret_cast<const uint8_t *>(sv.data());
            v.len = sv.size();
            break;
        }
        case dom::element_type::INT64:
            v.kind = KJ_INT;
            v.int_value = cur.get_int64().value_unsafe();
            v.double_value = double(v.int_value);
            break;
        case dom::element_type::UINT64:
        case dom::element_type::DOUBLE:
            v.kind = KJ_FLOAT;
            v.double_value = cur.get_double().value_unsafe();
            raw_number(parser, fields->paths[i], data, length, v);
            break;
        case dom::element_type::NULL_VALUE:
            v.kind = KJ_NULL;
            break;
        case dom::element_type::BOOL:
            v.kind = KJ_BOOL;
            v.int_value = cur.get_bool().value_unsafe() ? 1 : 0;
            break;
        case dom::element_type::OBJECT:
            v.kind = KJ_OBJECT;
            break;
        case dom::element_type::ARRAY:
            v.kind = KJ_ARRAY;
            break;
        }
    }
    return 0;
}

// On-demand: touches only the bytes on the way to the fields asked for. For records
// that were fully validated when they were produced (everything in a Kappa log).
static std::string_view trimmed_token(ondemand::value &v) {
    std::string_view raw = v.raw_json_token();
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' || raw.back() == '\r' || raw.back() == ',' || raw.back() == '}' || raw.back() == ']'))
        raw.remove_suffix(1);
    return raw;
}

static int classify(ondemand::value &v, kj_value &out) {
    ondemand::json_type t;
    if (auto e = v.type().get(t)) return int(e);
    switch (t) {
    case ondemand::json_type::string: {
        // Without escapes the content is the raw token between its quotes: no copy.
        std::string_view raw = trimmed_token(v);
        if (raw.size() >= 2 && raw.back() == '"' && std::memchr(raw.data() + 1, '\\', raw.size() - 2) == nullptr) {
            out.kind = KJ_STRING;
            out.ptr = reinterpret_cast<const uint8_t *>(raw.data() + 1);
            out.len = raw.size() - 2;
            return 0;
        }
        std::string_view sv;
        if (auto e = v.get_string().get(sv)) return int(e);
        out.kind = KJ_STRING;
        out.ptr = reinterpret_cast<const uint8_t *>(sv.data());
        out.len = sv.size();
        return 0;
    }
    case ondemand::json_type::number: {
        std::string_view raw = trimmed_token(v);
        // More than 19 significant digits overflow simdjson 3.0's on-demand mantissa:
        // get_double() gave 0.1747… for 0.35922337203627758088 (fuzz-json), and jobs sum
        // that double. Such a number goes to the DOM parser (kj_lazy_extract falls back on
        // any error), which rounds it correctly.
        size_t digits = 0;
        for (char c : raw) {
            if (c == 'e' || c == 'E') break;
            if (c >= '0' && c <= '9') digits++;
        }
        if (digits > 19) return int(NUMBER_ERROR);
        // Not get_number(): in simdjson 3.0 it yields 0.0 for a decimal of 19 or more
        // digits ("1234567890123456789.5"), where the DOM parser and get_double() give
        // the value (fuzz-json). The type peeks; one typed read consumes.
        ondemand::number_type type;
        if (auto e = v.get_number_type().get(type)) return int(e);
        if (type == ondemand::number_type::signed_integer) {
            int64_t i;
            if (auto e = v.get_int64().get(i)) return int(e);
            out.kind = KJ_INT;
            out.int_value = i;
            out.double_value = double(i);
            return 0;
        }
        double d;
        if (auto e = v.get_double().get(d)) return int(e);
        out.kind = KJ_FLOAT;
        out.double_value = d;
        out.ptr = reinterpret_cast<const uint8_t *>(raw.data());
        out.len = raw.size();
        return 0;
    }
    case ondemand::json_type::null: out.kind = KJ_NULL; return 0;
    case ondemand::json_type::boolean: {
        bool b;
        if (auto e = v.get_bool().get(b)) return int(e);
        out.kind = KJ_BOOL;
        out.int_value = b ? 1 : 0;
        return 0;
    }
    case ondemand::json_type::object: out.kind = KJ_OBJECT; return 0;
    case ondemand::json_type::array: out.kind = KJ_ARRAY; return 0;
    default: return 0;
    }
}

// What `descend` returns when the path does not exist in the document.
static constexpr int ABSENT = -2;

// True when a key's raw bytes (after its opening quote) hold an escape. The structural
// index ended the key at an unescaped quote, and a backslash comes before any escaped
// one, so the scan stops inside the key.
static bool has_escape(const char *raw) {
    for (const char *p = raw; *p != '"'; p++) {
        if (*p == '\\') return true;
    }
    return false;
}

// Whether a field's key is the step's: raw when neither side needs unescaping, else
// unescaped, as the DOM parser compares (simdjson's on-demand lookups compare raw: a key
// written "user\u005fid" was a different field to the jobs than to produce, and a wanted
// key holding a quote matched other bytes, fuzz-json). Sets `error` when the key does
// not unescape.
static bool key_is(ondemand::field &field, const step &s, int &error) {
    ondemand::raw_json_string raw = field.key();
    if (s.raw_safe && !has_escape(raw.raw())) return raw.unsafe_is_equal(s.key);
    std::string_view unescaped;
    if (auto e = field.unescaped_key().get(unescaped)) {
        error = int(e);
        return false;
    }
    return unescaped == s.key;
}

// The value of the first field of `o` named by step `s`; 0, ABSENT, or the error of a
// malformed document.
static int find_key(ondemand::object &o, const step &s, ondemand::value &out) {
    for (auto f : o) {
        ondemand::field field;
        if (auto e = std::move(f).get(field)) return int(e);
        int error = 0;
        bool match = key_is(field, s, error);
        if (error != 0) return error;
        if (match) {
            out = field.value();
            return 0;
        }
    }
    return ABSENT;
}

// Follows path[1...] from `cur` (path[0] led to it). Returns 0 when it leads somewhere,
// ABSENT when it does not (a missing key, a value of another type, an index past the
// end: simdjson's recoverable errors), else the error of a malformed document, after
// which the on-demand iterator must not be used again: the caller returns it. (Taking
// every error for "absent" and reading on crashed on malformed records: fuzz-json.)
static int descend(ondemand::value &cur, const std::vector<step> &path) {
    for (size_t k = 1; k < path.size(); k++) {
        const auto &s = path[k];
        if (s.is_index) {
            ondemand::array arr;
            if (auto e = cur.get_array().get(arr)) return e == INCORRECT_TYPE ? ABSENT : int(e);
            size_t n = 0;
            bool found = false;
            for (auto elem : arr) {
                ondemand::value ev;
                if (auto e = elem.get(ev)) return int(e);
                if (n++ == s.index) { cur = ev; found = true; break; }
            }
            if (!found) return ABSENT;
        } else {
            ondemand::object o;
            if (auto e = cur.get_object().get(o)) return e == INCORRECT_TYPE ? ABSENT : int(e);
            ondemand::value next;
            if (int found = find_key(o, s, next)) return found;
            cur = next;
        }
    }
    return 0;
}

// Descends `path` from `cur` and classifies what it finds into `out`; 0, or the error
// of a malformed document.
static int extract(ondemand::value &cur, const std::vector<step> &path, kj_value &out) {
    int found = descend(cur, path);
    if (found == ABSENT) return 0;
    if (found != 0) return found;
    return classify(cur, out);
}

// The one walk of kj_lazy_extract over the top-level fields; 0 or an error.
static int lazy_one_pass(kj_parser *parser, const kj_fields *fields, const uint8_t *data, size_t length, kj_value *out) {
    ondemand::document doc;
    if (auto e = parser->ondemand.iterate(reinterpret_cast<const char *>(data), length, length + KJ_PADDING).get(doc)) return int(e);
    ondemand::object obj;
    if (auto e = doc.get_object().get(obj)) return e == INCORRECT_TYPE ? KJ_ERR_NOT_OBJECT : int(e);
    if (fields == nullptr) return 0;
    const size_t count = fields->paths.size();
    for (size_t i = 0; i < count; i++) std::memset(&out[i], 0, sizeof out[i]);
    // One walk over the top-level fields in document order, stopping once every path
    // is found: no field is skipped twice, and the tail is never touched. Each field's
    // value is entered by at most one path.
    uint64_t missing = count == 64 ? ~uint64_t(0) : (uint64_t(1) << count) - 1;
    for (auto f : obj) {
        ondemand::field field;
        if (auto e = std::move(f).get(field)) return int(e);
        ondemand::raw_json_string key = field.key();
        // A key with an escape ("user\u005fid") is compared unescaped, as the DOM
        // parser does (key_is); the rest raw, and only against the paths whose key
        // starts with the key's first byte.
        std::string_view unescaped;
        const bool escaped = has_escape(key.raw());
        if (escaped) {
            if (auto e = field.unescaped_key().get(unescaped)) return int(e);
        }
        uint64_t candidates = (escaped ? ~uint64_t(0) : fields->by_first_byte[uint8_t(*key.raw())]) & missing;
        while (candidates != 0) {
            size_t i = size_t(__builtin_ctzll(candidates));
            candidates &= candidates - 1;
            const std::string &wanted = fields->paths[i][0].key;
            if (escaped ? unescaped != wanted : !key.unsafe_is_equal(wanted)) continue;
            missing &= ~(uint64_t(1) << i);  // the first occurrence of a key counts
            ondemand::value cur = field.value();
            if (int e = extract(cur, fields->paths[i], out[i])) return e;
            break;
        }
        if (missing == 0) break;
    }
    return 0;
}

// The byte scan: for the common record of a Kappa log — valid JSON (it was validated when
// produced), an object whose wanted fields are top-level keys without escapes holding
// strings without escapes, integers, numbers, literals — one forward walk over the bytes
// up to the last wanted field, with no structural index (simdjson's stage 1 indexes the
// whole document first: a third of the lazy path's time on ~250-byte events). Anything
// else — an escape in a key or a wanted string, a number the DOM parser may judge
// differently (over 19 digits, beyond int64 as an integer, out of a double's range), a
// byte that is not where valid JSON puts it, the end reached early — returns SCAN_BAIL and
// the on-demand walk decides, so no answer differs from it. The scan trusts no input:
// every read stays within the document and the KJ_PADDING bytes after it (16-byte
// loads may reach into the padding; what they find there is never taken).
static constexpr int SCAN_BAIL = 1;

static inline bool json_space(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

namespace {
struct scanner {
    const uint8_t *p;
    const uint8_t *end;

    bool skip_space() {
        while (p < end && json_space(*p)) p++;
        return p < end;
    }
    // At an opening quote: past the closing one; `escaped` says whether the string
    // holds a backslash. False when the input ends first. Sixteen bytes at a time where
    // SSE2 is (the caller's KJ_PADDING makes the loads past `end` readable; what they
    // find there is not taken).
    bool skip_string(bool &escaped) {
        p++;
        escaped = false;
        while (p < end) {
#if defined(__SSE2__)
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
            const unsigned quotes = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"'))));
            const unsigned slashes = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
            if (slashes == 0 || (quotes != 0 && (quotes & -quotes) < (slashes & -slashes))) {
                if (quotes == 0) {
                    p += 16;
                    continue;
                }
                const uint8_t *close = p + __builtin_ctz(quotes);
                if (close >= end) return false;
                p = close + 1;
                return true;
            }
            p += __builtin_ctz(slashes);  // a backslash comes first: it and what it escapes
#else
            const uint8_t c = *p;
            if (c == '"') {
                p++;
                return true;
            }
            if (c != '\\') {
                p++;
                continue;
            }
#endif
            escaped = true;
            if (end - p < 2) return false;
            p += 2;
        }
        return false;
    }
    // Past a nested object or array, strings within it included.
    bool skip_nested() {
        size_t depth = 0;
        while (p < end) {
            uint8_t c = *p;
            if (c == '"') {
                bool escaped;
                if (!skip_string(escaped)) return false;
                continue;
            }
            p++;
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (depth == 0) return false;
                if (--depth == 0) return true;
            }
        }
        return false;
    }
    // Past a scalar that is not a string (number or literal): up to its delimiter.
    const uint8_t *scalar_end() const {
        const uint8_t *q = p;
        while (q < end && *q != ',' && *q != '}' && *q != ']' && !json_space(*q)) q++;
        return q;
    }
};

// A JSON number token's value, as the on-demand parser classifies it; false: bail.
static bool scan_number(const uint8_t *b, const uint8_t *e, kj_value &out) {
    const uint8_t *q = b;
    bool negative = q < e && *q == '-';
    if (negative) q++;
    const uint8_t *digits = q;
    uint64_t magnitude = 0;
    size_t count = 0;
    while (q < e && *q >= '0' && *q <= '9') {
        magnitude = magnitude * 10 + uint64_t(*q - '0');
        q++;
        count++;
    }
    if (count == 0 || (count > 1 && *digits == '0')) return false;
    if (q == e) {  // an integer
        if (count > 18) return false;  // may overflow int64: the on-demand parser decides
        out.kind = KJ_INT;
        out.int_value = negative ? -int64_t(magnitude) : int64_t(magnitude);
        out.double_value = double(out.int_value);
        return true;
    }
    // Fraction and exponent, checked to JSON's grammar; then the correctly rounded
    // double, as simdjson computes it.
    size_t significant = count;
    if (*q == '.') {
        q++;
        size_t fraction = 0;
        while (q < e && *q >= '0' && *q <= '9') { q++; fraction++; }
        if (fraction == 0) return false;
        significant += fraction;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < e && (*q == '+' || *q == '-')) q++;
        size_t exponent = 0;
        while (q < e && *q >= '0' && *q <= '9') { q++; exponent++; }
        if (exponent == 0) return false;
    }
    if (q != e || significant > 19) return false;
    double d;
    auto r = std::from_chars(reinterpret_cast<const char *>(b), reinterpret_cast<const char *>(e), d);
    if (r.ec != std::errc() || r.ptr != reinterpret_cast<const char *>(e) || !std::isfinite(d)) return false;
    out.kind = KJ_FLOAT;
    out.double_value = d;
    out.ptr = b;
    out.len = size_t(e - b);
    return true;
}

static int scan_flat(const kj_fields *fields, const uint8_t *data, size_t length, kj_value *out) {
    scanner s{data, data + length};
    if (!s.skip_space() || *s.p != '{') return SCAN_BAIL;
    s.p++;
    const size_t count = fields->paths.size();
    for (size_t i = 0; i < count; i++) std::memset(&out[i], 0, sizeof out[i]);
    uint64_t missing = count == 64 ? ~uint64_t(0) : (uint64_t(1) << count) - 1;
    if (!s.skip_space()) return SCAN_BAIL;
    if (*s.p == '}') return 0;
    while (missing != 0) {
        if (*s.p != '"') return SCAN_BAIL;
        const uint8_t *key = s.p + 1;
        bool escaped;
        if (!s.skip_string(escaped) || escaped) return SCAN_BAIL;
        const size_t key_length = size_t(s.p - 1 - key);
        if (!s.skip_space() || *s.p != ':') return SCAN_BAIL;
        s.p++;
        if (!s.skip_space()) return SCAN_BAIL;
        // Which wanted path (if any) this key is; the first occurrence counts.
        size_t wanted = SIZE_MAX;
        uint64_t candidates = fields->by_first_byte[key_length == 0 ? uint8_t('"') : key[0]] & missing;
        while (candidates != 0) {
            size_t i = size_t(__builtin_ctzll(candidates));
            candidates &= candidates - 1;
            const std::string_view k = fields->first_keys[i];
            if (k.size() != key_length) continue;
            bool same;
            if (key_length <= 16 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
                // Two loads from the key's start: within the document and its padding.
                const auto &w = fields->first_words[i];
                same = (load_word(key) & w.m0) == w.w0 && (load_word(key + 8) & w.m1) == w.w1;
            } else {
                same = std::memcmp(k.data(), key, key_length) == 0;
            }
            if (same) { wanted = i; break; }
        }
        const uint8_t c = *s.p;
        if (c == '"') {
            const uint8_t *value = s.p + 1;
            if (!s.skip_string(escaped)) return SCAN_BAIL;
            if (wanted != SIZE_MAX) {
                if (escaped) return SCAN_BAIL;  // unescaping is the on-demand parser's
                out[wanted].kind = KJ_STRING;
                out[wanted].ptr = value;
                out[wanted].len = size_t(s.p - 1 - value);
            }
        } else if (c == '{' || c == '[') {
            if (!s.skip_nested()) return SCAN_BAIL;
            if (wanted != SIZE_MAX) out[wanted].kind = c == '{' ? KJ_OBJECT : KJ_ARRAY;
        } else {
            const uint8_t *e = s.scalar_end();
            const size_t n = size_t(e - s.p);
            if (wanted != SIZE_MAX) {
                kj_value &v = out[wanted];
                if (n == 4 && std::memcmp(s.p, "null", 4) == 0) v.kind = KJ_NULL;
                else if (n == 4 && std::memcmp(s.p, "true", 4) == 0) { v.kind = KJ_BOOL; v.int_value = 1; }
                else if (n == 5 && std::memcmp(s.p, "false", 5) == 0) { v.kind = KJ_BOOL; v.int_value = 0; }
                else if (!scan_number(s.p, e, v)) return SCAN_BAIL;
            } else if (n == 0) {
                return SCAN_BAIL;
            }
            s.p = e;
        }
        if (wanted != SIZE_MAX) missing &= ~(uint64_t(1) << wanted);
        if (!s.skip_space()) return SCAN_BAIL;
        if (*s.p == '}') return 0;
        if (*s.p != ',') return SCAN_BAIL;
        s.p++;
        if (!s.skip_space()) return SCAN_BAIL;
    }
    return 0;
}
}

extern "C" int kj_scan_extract(const kj_fields *fields, const uint8_t *data, size_t length, kj_value *out) {
    if (fields == nullptr || !fields->flat) return SCAN_BAIL;
    return scan_flat(fields, data, length, out);
}

extern "C" int kj_lazy_extract(kj_parser *parser, const kj_fields *fields, const uint8_t *data, size_t length, kj_value *out) {
    // Paths that share a first key or start with an index would look fields up one
    // after another in one object, and after a lookup that ran into a malformed value
    // the on-demand iterator is not safe to use again (simdjson asserted, fuzz-json);
    // rewinding would invalidate the strings already found. Such jobs are rare: the DOM
    // parser's full validation serves them.
    if (fields != nullptr && !fields->one_pass) return kj_parse_extract(parser, fields, data, length, out);
    if (kj_scan_extract(fields, data, length, out) == 0) return 0;
    if (lazy_one_pass(parser, fields, data, length, out) == 0) return 0;
    // Any error: the DOM parser, which validated the record when it was produced,
    // decides. The on-demand number parser refuses some numbers the DOM parser takes
    // ("1e-4000000000000000000000": 0.0), and a record that fails here is rare.
    return kj_parse_extract(parser, fields, data, length, out);
}

extern "C" const char *kj_error_message(int code) {
    if (code == KJ_ERR_NOT_OBJECT) return "the JSON value is not an object";
    return error_message(error_code(code));
}
