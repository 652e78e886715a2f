-- wrk script used by bench/http.sh. It defines only done(), so wrk keeps its fast path
-- (no Lua runs per request); at the end it prints one line that the script parses:
-- exact percentiles from wrk's latency histogram, in microseconds, plus the counters.
-- %.0f rather than %d: byte counts of the 1 MiB scenario exceed 32 bits.
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "@wrk requests=%.0f duration_us=%.0f bytes=%.0f mean_us=%.1f p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f"
         .. " err_connect=%.0f err_read=%.0f err_write=%.0f err_status=%.0f err_timeout=%.0f\n",
      summary.requests, summary.duration, summary.bytes, latency.mean,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
