/* Local training under a budget. */
#include "fl/client.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/nn/fit.h"

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

fg_status fg_local_train(const fg_local_job *job, fg_client_record *rec) {
  const fg_world *w = job->world;
  const fg_config *cfg = w->cfg;
  char name[48];
  snprintf(name, sizeof name, "client %d", job->client);
  fg_ledger ledger;
  fg_ledger_init(&ledger, name, job->cap);
  const int data = job->data_client >= 0 ? job->data_client : job->client;
  const uint64_t clients = (uint64_t)(job->run_clients > 0 ? job->run_clients : cfg->clients);
  fg_process_peak_rss_reset();
  double t0 = seconds_now();
  rec->budget_bytes = job->cap;

  fg_trainer *t = NULL;
  fg_status s = fg_trainer_create_planned(job->graph, job->plan, &ledger, &t);
  if (s == FG_ERR_BUDGET) {
    rec->status = FG_CLIENT_OVER_BUDGET;
    snprintf(rec->error, sizeof rec->error, "%s", fg_last_error());
    return FG_OK;
  }
  FG_TRY(s);
  rec->planned_bytes = fg_trainer_plan(t)->total;
  double copy0 = seconds_now();
  s = fg_trainer_set_state(t, job->initial);
  rec->transfer_seconds = seconds_now() - copy0;
  if (s == FG_OK && job->prox_linear) s = fg_trainer_set_prox_linear(t, job->prox_linear);
  if (s == FG_OK && job->plan->opt.loss.class_mask) s = fg_trainer_set_class_mask(t, fg_world_class_mask(w, data));
  fg_trainer_set_dropout_stream(t, cfg->seed, (uint64_t)job->round * clients + (uint64_t)job->client);

  fg_fit_options fo;
  memset(&fo, 0, sizeof fo);
  fo.norm = w->norm;
  fo.aug = w->aug;
  fo.seed = cfg->seed;
  fo.stream = (uint64_t)job->client;
  fo.shuffle = 1;
  fo.drop_last = job->drop_last;
  fg_dataset_view view = fg_world_client_view(w, data);
  fg_epoch_stats st;
  memset(&st, 0, sizeof st);
  for (int e = 0; e < cfg->local_epochs && s == FG_OK; e++)
    s = fg_fit_epoch(t, &w->loader, &view, &fo, (uint64_t)job->round * (uint64_t)cfg->local_epochs + (uint64_t)e,
                     NULL, NULL, &st);
  copy0 = seconds_now();
  if (s == FG_OK) s = fg_trainer_get_state(t, job->trained);
  rec->transfer_seconds += seconds_now() - copy0;
  fg_trainer_destroy(t);
  if (s == FG_ERR_NUMERIC && cfg->on_diverge == FG_DIVERGE_SKIP) {
    /* the loss turned non-finite: the client stops and sends nothing */
    rec->status = FG_CLIENT_DIVERGED;
    snprintf(rec->error, sizeof rec->error, "diverged: %s", fg_last_error());
    rec->engine_peak_bytes = ledger.peak;
    rec->process_peak_bytes = fg_process_peak_rss();
    rec->seconds = seconds_now() - t0;
    return FG_OK;
  }
  if (s != FG_OK) {
    fg_error_prefix("client %d, round %d%s", job->client, job->round + 1,
                    s == FG_ERR_NUMERIC ? " (updates.on_diverge: stop)" : "");
    return s;
  }
  rec->status = FG_CLIENT_OK;
  rec->train_loss = st.samples ? st.loss_sum / (double)st.samples : 0.0;
  rec->engine_peak_bytes = ledger.peak;
  rec->process_peak_bytes = fg_process_peak_rss();
  rec->seconds = seconds_now() - t0;
  return FG_OK;
}
