/* test_promtool.c - /metrics as Prometheus itself reads it: after traffic on
 * every endpoint (successes and errors), `promtool check metrics` must accept
 * the exposition. Skips (77) when promtool (Debian's prometheus) is absent;
 * scripts/deps.sh installs it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

int main(void)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        SKIP("promtool not found (apt-get install prometheus)");
    aecd_proc srv;
    harness_start(&srv, harness_model(1), NULL, NULL);
    size_t len;
    uint8_t *png = harness_png(40, 30, 5, &len);
    http_resp r;
    CHECK(http_post(&srv, "/encode", "image/png", png, len, &r) == 200, "encode");
    http_resp_free(&r);
    CHECK(http_post(&srv, "/anomaly", "image/png", png, len, &r) == 200, "anomaly");
    http_resp_free(&r);
    CHECK(http_post(&srv, "/encode", "image/png", "junk", 4, &r) == 415, "bad image");
    http_resp_free(&r);
    CHECK(http_get(&srv, "/nope", &r) == 404, "404");
    http_resp_free(&r);
    CHECK(http_get(&srv, "/metrics", &r) == 200, "metrics");
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.txt", test_tmpdir());
    REQUIRE(test_write_file(path, r.body, r.len) == 0, "write %s", path);
    http_resp_free(&r);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    int st = system(cmd);
    CHECK(st == 0, "promtool check metrics rejects /metrics (status %d; file %s)", st, path);
    free(png);
    CHECK(harness_stop(&srv) == 0, "clean exit");
    return TEST_SUMMARY();
}
