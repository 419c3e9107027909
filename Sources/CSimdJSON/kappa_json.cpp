// A small C shim over simdjson's DOM parser: validate a whole document, then extract only
// the fields a caller compiled. Swift cannot call simdjson's C++ API directly with ease,
// and the hot path wants one call per line with no allocation.
#include "kappa_json.h"
#include <simdjson.h>
#include <string>
#include <string_view>
#include <vector>
#include <cstring>

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
};
}

struct kj_fields {
    std::vector<std::vector<step>> paths;
    /// Every path starts with a key and no two start with the same one: the lazy
    /// extraction can then walk the object once, in document order.
    bool one_pass = false;
    /// For the one-pass walk: which paths' first key starts with each byte.
    uint64_t by_first_byte[256] = {};
};

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
            out.push_back(step{true, n, {}});
            i = close + 1;
            if (i < s.size() && s[i] == '.') i++;
            continue;
        }
        size_t end = i;
        while (end < s.size() && s[end] != '.' && s[end] != '[') end++;
        if (end == i) return false;
        out.push_back(step{false, 0, std::string(s.substr(i, end - i))});
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
        for (size_t j = 0; j < i && f->one_pass; j++)
            if (f->paths[j][0].key == f->paths[i][0].key) f->one_pass = false;
    }
    if (f->one_pass) {
        for (size_t i = 0; i < count; i++) {
            const std::string &key = f->paths[i][0].key;
            f->by_first_byte[uint8_t(key.empty() ? '"' : key[0])] |= uint64_t(1) << i;
        }
    }
    return f;
}

extern "C" void kj_fields_destroy(kj_fields *fields) { delete fields; }

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
        if (first) {
            next = s.is_index ? doc.at(s.index) : doc.find_field_unordered(s.key);
            first = false;
        } else {
            next = s.is_index ? cur.at(s.index) : cur.find_field_unordered(s.key);
        }
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
        ondemand::number n;
        if (auto e = v.get_number().get(n)) return int(e);
        if (n.is_int64()) {
            out.kind = KJ_INT;
            out.int_value = n.get_int64();
            out.double_value = double(out.int_value);
            return 0;
        }
        out.kind = KJ_FLOAT;
        out.double_value = n.as_double();
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

// Follows path[1...] from `cur` (path[0] led to it). False when the path is absent.
static bool descend(ondemand::value &cur, const std::vector<step> &path) {
    for (size_t k = 1; k < path.size(); k++) {
        const auto &s = path[k];
        if (s.is_index) {
            ondemand::array arr;
            if (cur.get_array().get(arr)) return false;
            size_t n = 0;
            bool found = false;
            for (auto elem : arr) {
                ondemand::value ev;
                if (elem.get(ev)) return false;
                if (n++ == s.index) { cur = ev; found = true; break; }
            }
            if (!found) return false;
        } else {
            ondemand::object o;
            if (cur.get_object().get(o)) return false;
            auto next = o.find_field_unordered(s.key);
            if (next.error()) return false;
            cur = next.value_unsafe();
        }
    }
    return true;
}

extern "C" int kj_lazy_extract(kj_parser *parser, const kj_fields *fields, const uint8_t *data, size_t length, kj_value *out) {
    ondemand::document doc;
    if (auto e = parser->ondemand.iterate(reinterpret_cast<const char *>(data), length, length + KJ_PADDING).get(doc)) return int(e);
    ondemand::object obj;
    if (auto e = doc.get_object().get(obj)) return e == INCORRECT_TYPE ? KJ_ERR_NOT_OBJECT : int(e);
    if (fields == nullptr) return 0;
    const size_t count = fields->paths.size();
    for (size_t i = 0; i < count; i++) std::memset(&out[i], 0, sizeof out[i]);
    if (fields->one_pass) {
        // One walk over the top-level fields in document order, stopping once every
        // path is found: no field is skipped twice, and the tail is never touched.
        uint64_t missing = count == 64 ? ~uint64_t(0) : (uint64_t(1) << count) - 1;
        for (auto f : obj) {
            ondemand::field field;
            if (auto e = std::move(f).get(field)) return int(e);
            ondemand::raw_json_string key = field.key();
            // Only paths whose key starts with this key's first byte can match.
            uint64_t candidates = fields->by_first_byte[uint8_t(*key.raw())] & missing;
            while (candidates != 0) {
                size_t i = size_t(__builtin_ctzll(candidates));
                candidates &= candidates - 1;
                if (!key.unsafe_is_equal(fields->paths[i][0].key)) continue;
                missing &= ~(uint64_t(1) << i);  // the first occurrence of a key counts
                ondemand::value cur = field.value();
                if (descend(cur, fields->paths[i])) {
                    if (int e = classify(cur, out[i])) return e;
                }
                break;
            }
            if (missing == 0) break;
        }
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        const auto &path = fields->paths[i];
        if (path[0].is_index) continue;  // an object has no index: absent
        auto first = obj.find_field_unordered(path[0].key);
        if (first.error() == NO_SUCH_FIELD) continue;
        if (first.error()) return int(first.error());
        ondemand::value cur = first.value_unsafe();
        if (!descend(cur, path)) continue;
        if (int e = classify(cur, out[i])) return e;
    }
    return 0;
}

extern "C" const char *kj_error_message(int code) {
    if (code == KJ_ERR_NOT_OBJECT) return "the JSON value is not an object";
    return error_message(error_code(code));
}
