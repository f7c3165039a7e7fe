/* A random walk for a few symbols, published on ticker/SYMBOL every 250 ms
 * ({"symbol","price","change","time"}), plus ticker/all with every quote. */
#include "serve_demo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duplex/log.h"

#define TICK_MS 250

static const struct {
  const char *symbol;
  double start;
} symbols[] = {{"DPLX", 42.0}, {"ACME", 118.5}, {"GLOBX", 903.2}, {"INIT", 7.35}, {"WAVE", 251.0}};
#define NSYMBOLS (sizeof symbols / sizeof *symbols)

static struct demo {
  dx_hub *hub;
  dx_timer timer;
  bool running;
  double price[NSYMBOLS];
  unsigned seed;
} demo;

static double uniform(void) { return (rand_r(&demo.seed) + 0.5) / ((double)RAND_MAX + 1.0); }

static void on_tick(dx_timer *t) {
  (void)t;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  for (size_t i = 0; i < NSYMBOLS; i++) {
    if (uniform() < 0.4) continue; /* not every symbol moves every tick */
    /* Gaussian step (Box-Muller), 0.3% volatility per tick. */
    double z = sqrt(-2.0 * log(uniform())) * cos(2 * M_PI * uniform());
    double old = demo.price[i];
    demo.price[i] = fmax(0.01, old * (1.0 + 0.003 * z));
    char topic[64], json[160];
    snprintf(topic, sizeof topic, "ticker/%s", symbols[i].symbol);
    int n = snprintf(json, sizeof json,
                     "{\"symbol\":\"%s\",\"price\":%.2f,\"change\":%.2f,\"time\":%lld}",
                     symbols[i].symbol, demo.price[i], demo.price[i] - symbols[i].start, ms);
    if (dx_hub_publish(demo.hub, topic, json, (size_t)n, NULL) != 0 ||
        dx_hub_publish(demo.hub, "ticker/all", json, (size_t)n, NULL) != 0)
      dx_log_warn("demo: publishing %s failed", symbols[i].symbol);
  }
}

int serve_demo_start(dx_hub *hub, dx_loop *loop) {
  demo.hub = hub;
  demo.seed = (unsigned)time(NULL);
  for (size_t i = 0; i < NSYMBOLS; i++) demo.price[i] = symbols[i].start;
  dx_timer_init(loop, &demo.timer, on_tick);
  if (dx_timer_start(&demo.timer, TICK_MS, TICK_MS) != 0) return 1;
  demo.running = true;
  dx_log_info("demo: publishing a simulated market feed on ticker/DPLX, ticker/ACME, ... and "
              "ticker/all every %d ms",
              TICK_MS);
  return 0;
}

void serve_demo_stop(void) {
  if (!demo.running) return;
  dx_timer_stop(&demo.timer);
  demo.running = false;
}
