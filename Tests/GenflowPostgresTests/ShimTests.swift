import CGenflowShims
import Testing

@Suite("C shims")
struct ShimTests {
    @Test("LWS_PRE comes through the shim")
    func lwsPre() {
        #expect(gf_lws_pre() == 16)
    }

    @Test("the typed curl_easy_setopt shims set options on a real handle")
    func curlOptions() throws {
        let handle = try #require(curl_easy_init())
        defer { curl_easy_cleanup(handle) }
        #expect(gf_curl_easy_setopt_string(handle, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK)
        #expect(gf_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 200) == CURLE_OK)
        #expect(gf_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1) == CURLE_OK)
        // Port 1 on loopback refuses: a real transfer attempt, failing fast with a connection error.
        #expect(curl_easy_perform(handle) == CURLE_COULDNT_CONNECT)
        var code = 0
        #expect(gf_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
        #expect(code == 0)
    }
}
