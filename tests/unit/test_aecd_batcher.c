/* test_aecd_batcher.c - the dynamic batcher alone (src/server/batcher.h),
 * on two small models built in process:
 *   - a job's output is the model's answer for that one sample, bit for bit;
 *   - a batch waits while jobs of its pass are upstream (admitted, not yet
 *     submitted), and runs once they are all in, or when they are withdrawn;
 *   - jobs of other passes (another model, other layers) are run apart and
 *     wait in the queue, which refuses jobs beyond queue_size (FULL);
 *   - a job whose deadline has passed completes EXPIRED without running;
 *   - stop cancels what is queued (CANCELLED) and refuses new jobs (STOPPED).
 * Waits are bounded by the batch timeout set to 20 s here, so nothing
 * depends on how fast or quiet the machine is. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aec/clock.h"
#include "aec/model.h"

#include "batcher.h"
#include "testutil.h"

static const char *SPEC = "[{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":48,\"out\":6},"
                          "{\"type\":\"relu\"},{\"type\":\"linear\",\"in\":6,\"out\":48},"
                          "{\"type\":\"sigmoid\"},{\"type\":\"unflatten\",\"shape\":[3,4,4]}]";

#define IN 48
#define LAT 6

typedef struct {
    aecd_job job;
    float in[IN], out[IN];
    atomic_int done;
    aecd_job_status status;
} tjob;

static void on_done(aecd_job *j)
{
    tjob *t = j->ctx;
    t->status = j->status;
    atomic_store(&t->done, 1);
}

static void job_init(tjob *t, aecd_runner *r, int first, int last, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < IN; i++)
        t->in[i] = (float)(test_rand_u64(&seed) % 1000) / 1000.0f;
    t->job = (aecd_job){
        .pass = {r, first, last}, .in = t->in, .out = t->out, .on_done = on_done, .ctx = t};
}

/* Waits (up to 20 s) until the job is done; 1 if it is. */
static int wait_done(tjob *t)
{
    for (int i = 0; i < 20000 && !atomic_load(&t->done); i++)
        usleep(1000);
    return atomic_load(&t->done);
}

static aec_model *make_model(uint64_t seed)
{
    aec_model *m = NULL;
    aec_error err = {{0}};
    REQUIRE(aec_model_from_spec(&m, SPEC, 3, 4, 4, 2, &err) == AEC_OK, "spec: %s", err.msg);
    aec_model_init_weights(m, seed);
    return m;
}

/* The model's answer for one sample, computed directly. */
static void expected(const aec_model *m, const tjob *t, float *out)
{
    aec_workspace *ws = NULL;
    aec_error err = {{0}};
    REQUIRE(aec_workspace_create(&ws, m, 1, 0, &err) == AEC_OK, "ws: %s", err.msg);
    const aecd_pass *p = &t->job.pass;
    const float *y = aec_model_infer(m, ws, t->in, 1, p->first, p->last);
    memcpy(out, y, aecd_pass_out_count(p) * sizeof(float));
    aec_workspace_free(ws);
}

static int same_as_alone(const aec_model *m, const tjob *t)
{
    float want[IN];
    expected(m, t, want);
    return memcmp(want, t->out, aecd_pass_out_count(&t->job.pass) * sizeof(float)) == 0;
}

int main(void)
{
    aec_model *ma = make_model(1), *mb = make_model(2);
    aecd_runner *ra = NULL, *rb = NULL;
    aec_error err = {{0}};
    REQUIRE(aecd_runner_create(&ra, ma, 8, 2, &err) == AEC_OK, "runner: %s", err.msg);
    REQUIRE(aecd_runner_create(&rb, mb, 8, 1, &err) == AEC_OK, "runner: %s", err.msg);
    /* Lanes are a hash of the runner's address and the layer range: two
     * passes may share one (by design, at a cost in batching only). The tests
     * below need model a's encode and decode passes and model b's pass in
     * lanes of their own, so draw runners until they are (the ones that
     * collided stay allocated, so that the next addresses differ). */
    aecd_runner *spare[128];
    int nspare = 0;
    for (;;) {
        aecd_pass e = {ra, 0, ma->latent_index}, d = {ra, ma->latent_index + 1, ma->nlayers - 1};
        aecd_pass wb = {rb, 0, mb->nlayers - 1};
        unsigned le = aecd_pass_lane(&e), ld = aecd_pass_lane(&d), lb = aecd_pass_lane(&wb);
        if ((le != ld && le != lb && ld != lb) || nspare >= 126)
            break;
        spare[nspare++] = ra, spare[nspare++] = rb;
        REQUIRE(aecd_runner_create(&ra, ma, 8, 2, &err) == AEC_OK, "runner: %s", err.msg);
        REQUIRE(aecd_runner_create(&rb, mb, 8, 1, &err) == AEC_OK, "runner: %s", err.msg);
    }
    aecd_batcher_opts o = {.max_batch = 8, .batch_timeout_us = 20000000, .queue_size = 3};
    aecd_batcher *b = NULL;
    REQUIRE(aecd_batcher_create(&b, &o, NULL, &err) == AEC_OK, "batcher: %s", err.msg);
    CHECK(aecd_batcher_running(b), "the batcher runs");

    aecd_pass enc = {ra, 0, ma->latent_index}, dec = {ra, ma->latent_index + 1, ma->nlayers - 1};
    aecd_pass whole_b = {rb, 0, mb->nlayers - 1};
    CHECK(aecd_pass_in_count(&enc) == IN && aecd_pass_out_count(&enc) == LAT &&
              aecd_pass_in_count(&dec) == LAT && aecd_pass_out_count(&dec) == IN,
          "pass sizes: encode %zu -> %zu, decode %zu -> %zu", aecd_pass_in_count(&enc),
          aecd_pass_out_count(&enc), aecd_pass_in_count(&dec), aecd_pass_out_count(&dec));

    /* a lone job, nothing upstream: runs at once, the model's own answer */
    tjob t1;
    job_init(&t1, ra, 0, ma->latent_index, 11);
    aecd_batcher_admit(b, aecd_pass_lane(&t1.job.pass));
    CHECK(aecd_batcher_upstream(b) == 1, "admitted: one upstream");
    CHECK(aecd_batcher_submit(b, &t1.job) == AECD_SUBMIT_OK, "submit");
    CHECK(aecd_batcher_upstream(b) == 0, "submitted: none upstream");
    CHECK(wait_done(&t1) && t1.status == AECD_JOB_OK, "the lone job ran");
    CHECK(same_as_alone(ma, &t1), "its output is the model's answer for that sample");

    /* three jobs of one pass: the first waits for the two still upstream */
    tjob g[3];
    unsigned lane = aecd_pass_lane(&enc);
    for (int i = 0; i < 3; i++) {
        job_init(&g[i], ra, 0, ma->latent_index, 20 + (uint64_t)i);
        aecd_batcher_admit(b, lane);
    }
    aecd_batcher_submit(b, &g[0].job);
    usleep(100000);
    CHECK(!atomic_load(&g[0].done), "a job waits while jobs of its pass are upstream");
    aecd_batcher_submit(b, &g[1].job);
    aecd_batcher_submit(b, &g[2].job);
    int all = 1, same = 1;
    for (int i = 0; i < 3; i++) {
        all &= wait_done(&g[i]) && g[i].status == AECD_JOB_OK;
        same &= same_as_alone(ma, &g[i]);
    }
    CHECK(all, "the batch ran once the last one was submitted");
    CHECK(same, "each output in the batch equals the sample alone");

    /* a withdrawal ends the wait as a submission does */
    tjob w;
    job_init(&w, ra, 0, ma->latent_index, 30);
    aecd_batcher_admit(b, lane);
    aecd_batcher_admit(b, lane);
    aecd_batcher_submit(b, &w.job);
    usleep(50000);
    CHECK(!atomic_load(&w.done), "waiting for the other admitted job");
    aecd_batcher_withdraw(b, lane);
    CHECK(wait_done(&w) && same_as_alone(ma, &w), "withdrawn: the job runs, right");

    /* other passes wait in the queue while a batch waits; beyond queue_size: FULL */
    CHECK(aecd_pass_lane(&whole_b) != lane && aecd_pass_lane(&dec) != lane &&
              aecd_pass_lane(&dec) != aecd_pass_lane(&whole_b),
          "test setup: the passes have their own lanes");
    tjob head, q[3], d1;
    job_init(&head, ra, 0, ma->latent_index, 40);
    aecd_batcher_admit(b, lane);
    aecd_batcher_admit(b, lane); /* one more to come: head's batch waits */
    aecd_batcher_submit(b, &head.job);
    usleep(50000);
    int queued = 0;
    for (int i = 0; i < 3; i++) {
        job_init(&q[i], rb, 0, mb->nlayers - 1, 50 + (uint64_t)i);
        aecd_batcher_admit(b, aecd_pass_lane(&whole_b));
        queued += aecd_batcher_submit(b, &q[i].job) == AECD_SUBMIT_OK;
    }
    CHECK(queued == 3 && aecd_batcher_depth(b) == 3, "3 jobs of another model queued (depth %ld)",
          aecd_batcher_depth(b));
    job_init(&d1, ra, ma->latent_index + 1, ma->nlayers - 1, 60);
    for (int i = 0; i < LAT; i++)
        d1.in[i] = (float)i * 0.5f - 1.0f;
    aecd_batcher_admit(b, aecd_pass_lane(&dec));
    CHECK(aecd_batcher_submit(b, &d1.job) == AECD_SUBMIT_FULL, "a 4th job is refused: FULL");
    CHECK(!atomic_load(&head.done) && !atomic_load(&q[0].done), "nothing ran yet");
    aecd_batcher_withdraw(b, lane);
    all = wait_done(&head) && same_as_alone(ma, &head);
    for (int i = 0; i < 3; i++)
        all &= wait_done(&q[i]) && same_as_alone(mb, &q[i]);
    CHECK(all, "then the waiting batch and the other model's jobs run, each right");
    aecd_batcher_admit(b, aecd_pass_lane(&dec));
    d1.job.on_done = on_done;
    CHECK(aecd_batcher_submit(b, &d1.job) == AECD_SUBMIT_OK && wait_done(&d1) &&
              same_as_alone(ma, &d1),
          "a decode pass of the first model, resubmitted, is right");

    /* a deadline already passed: EXPIRED, not run */
    tjob late;
    job_init(&late, ra, 0, ma->latent_index, 70);
    late.job.deadline_ns = aec_now_ns() - 1;
    memset(late.out, 0x7f, sizeof late.out);
    aecd_batcher_admit(b, lane);
    aecd_batcher_submit(b, &late.job);
    float untouched;
    memset(&untouched, 0x7f, sizeof untouched);
    CHECK(wait_done(&late) && late.status == AECD_JOB_EXPIRED &&
              memcmp(&late.out[0], &untouched, sizeof untouched) == 0,
          "a job past its deadline completes EXPIRED and its output is not written");

    /* stop: the queued job is cancelled, new ones refused */
    tjob held, queued_b, after;
    job_init(&held, ra, 0, ma->latent_index, 80);
    job_init(&queued_b, rb, 0, mb->nlayers - 1, 81);
    aecd_batcher_admit(b, lane);
    aecd_batcher_admit(b, lane);
    aecd_batcher_submit(b, &held.job);
    usleep(50000);
    aecd_batcher_admit(b, aecd_pass_lane(&whole_b));
    aecd_batcher_submit(b, &queued_b.job);
    aecd_batcher_stop(b);
    CHECK(atomic_load(&queued_b.done) && queued_b.status == AECD_JOB_CANCELLED,
          "stop cancels the queued job");
    CHECK(atomic_load(&held.done), "the job being batched is finished before stop returns");
    CHECK(!aecd_batcher_running(b), "stopped");
    job_init(&after, ra, 0, ma->latent_index, 82);
    aecd_batcher_admit(b, lane);
    CHECK(aecd_batcher_submit(b, &after.job) == AECD_SUBMIT_STOPPED, "after stop: STOPPED");

    aecd_batcher_free(b);
    aecd_runner_free(ra);
    aecd_runner_free(rb);
    for (int i = 0; i < nspare; i++)
        aecd_runner_free(spare[i]);
    aec_model_free(ma);
    aec_model_free(mb);
    return TEST_SUMMARY();
}
