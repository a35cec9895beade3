{{/*
Prometheus rule groups: recording rules for the cache hit rates, and the alerts of
docs/observability.md. Rendered into the PrometheusRule and, by scripts/chart-test.sh, into a
plain rules file for `promtool check rules` / `promtool test rules`.

Labels the expressions rely on:
  namespace, policy   every serving-pod series (PodMonitor: `policy` from the pod label) and every
                      operator series (ServiceMonitor with honorLabels: the operator's own labels)
  tenant              hermes_cache_requests_total (the sidecar's tenant label)
Recorded names follow level:metric:operation.
*/}}
{{- define "hermes-cache.ruleGroups" -}}
{{- $pr := .Values.monitoring.prometheusRule -}}
{{- $a := $pr.alerts -}}
- name: hermes-cache
  interval: {{ $pr.interval }}
  rules:
    # Cache lookups: every request the sidecar looked up (bypassed requests are not lookups).
    # An error is a lookup that failed and was passed through (fail-open): it counts as a miss.
    - record: namespace_policy_tenant:hermes_cache_lookups:rate5m
      expr: |
        sum by (namespace, policy, tenant) (
          rate(hermes_cache_requests_total{result=~"hit_exact|hit_semantic|miss|error"}[5m])
        )
    # Hits of the semantic cache (exact or by similarity). "or 0 * lookups" keeps a 0 where a
    # policy has lookups but no hit series yet, so a collapse to zero is a value, not a gap.
    - record: namespace_policy_tenant:hermes_cache_hits:rate5m
      expr: |
        sum by (namespace, policy, tenant) (
          rate(hermes_cache_requests_total{result=~"hit_exact|hit_semantic"}[5m])
        )
        or 0 * namespace_policy_tenant:hermes_cache_lookups:rate5m
    - record: namespace_policy_tenant:hermes_cache_hit_ratio:rate5m
      expr: |
        namespace_policy_tenant:hermes_cache_hits:rate5m
        / (namespace_policy_tenant:hermes_cache_lookups:rate5m > 0)
    - record: namespace_policy:hermes_cache_lookups:rate5m
      expr: sum by (namespace, policy) (namespace_policy_tenant:hermes_cache_lookups:rate5m)
    - record: namespace_policy:hermes_cache_hits:rate5m
      expr: sum by (namespace, policy) (namespace_policy_tenant:hermes_cache_hits:rate5m)
    - record: namespace_policy:hermes_cache_hit_ratio:rate5m
      expr: |
        namespace_policy:hermes_cache_hits:rate5m
        / (namespace_policy:hermes_cache_lookups:rate5m > 0)
    - record: namespace_policy:hermes_cache_error_ratio:rate5m
      expr: |
        (
          sum by (namespace, policy) (rate(hermes_cache_requests_total{result="error"}[5m]))
          or 0 * namespace_policy:hermes_cache_lookups:rate5m
        )
        / (namespace_policy:hermes_cache_lookups:rate5m > 0)
    # vLLM prefix-cache hit rate in tokens: share of prompt tokens served from cached KV blocks.
    - record: namespace_policy:vllm_prefix_cache_hit_ratio:rate5m
      expr: |
        sum by (namespace, policy) (rate(vllm:prefix_cache_hits_total[5m]))
        / (sum by (namespace, policy) (rate(vllm:prefix_cache_queries_total[5m])) > 0)
    - record: namespace_policy:vllm_num_requests_waiting:sum
      expr: sum by (namespace, policy) (vllm:num_requests_waiting)
    - record: namespace_policy:vllm_kv_cache_usage_perc:max
      expr: max by (namespace, policy) (vllm:kv_cache_usage_perc)
    # Alerts live in the same group as the recording rules they read, after them: Prometheus
    # evaluates one group's rules in order, while separate groups run independently (an alert in
    # another group would read a recorded value from the previous evaluation).
    - alert: HermesCacheHitRateCollapsedAfterGenerationSwitch
      # A new cache generation starts cold, so the hit rate drops at a switch and should climb
      # back. This fires when, within `window` of a switch, it stays below `ratio` of what it was
      # `window` ago for `for`: the new generation is not being reused (e.g. a prompt template
      # or tenant header changed with it), and every miss goes to the GPUs. A switch is seen
      # either in the operator's counter or as the sidecars serving more than one generation
      # (`version`) within `window`: the latter still works across an operator restart.
      expr: |
        (
          namespace_policy:hermes_cache_hit_ratio:rate5m
            < {{ $a.hitRateCollapse.ratio }} * (namespace_policy:hermes_cache_hit_ratio:rate5m offset {{ $a.hitRateCollapse.window }})
        )
        and on (namespace, policy)
          ((namespace_policy:hermes_cache_hit_ratio:rate5m offset {{ $a.hitRateCollapse.window }}) >= {{ $a.hitRateCollapse.minBaseline }})
        and on (namespace, policy)
          (
            increase(hermes_operator_generation_switches_total[{{ $a.hitRateCollapse.window }}]) > 0
            or
            count by (namespace, policy) (
              count by (namespace, policy, version) (max_over_time(hermes_cache_generation_info[{{ $a.hitRateCollapse.window }}]))
            ) > 1
          )
      for: {{ $a.hitRateCollapse.for }}
      labels:
        severity: warning
        {{- with $pr.alertLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        summary: >-
          Semantic-cache hit rate of {{ "{{ $labels.namespace }}/{{ $labels.policy }}" }} has not recovered after a cache-generation switch.
        description: >-
          The hit rate is {{ "{{ $value | humanizePercentage }}" }}, below {{ $a.hitRateCollapse.ratio }} of its
          value {{ $a.hitRateCollapse.window }} ago, and spec.cacheVersion changed within the last
          {{ $a.hitRateCollapse.window }}. Check that clients of the new generation send the same
          prompts and tenant header as before; `kubectl get hcp -n {{ "{{ $labels.namespace }}" }}` shows the
          generation each policy serves.
    - alert: HermesCacheHomogeneousWorkload
      # Almost everything answered from cache for hours: the traffic is a narrow task set
      # (a benchmark loop, a replaying client). Worth a look before trusting capacity numbers.
      expr: |
        namespace_policy:hermes_cache_hit_ratio:rate5m > {{ $a.homogeneousWorkload.hitRate }}
        and on (namespace, policy)
          namespace_policy:hermes_cache_lookups:rate5m > {{ $a.homogeneousWorkload.minRequestRate }}
      for: {{ $a.homogeneousWorkload.for }}
      labels:
        severity: info
        {{- with $pr.alertLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        summary: >-
          Policy {{ "{{ $labels.namespace }}/{{ $labels.policy }}" }} answers {{ "{{ $value | humanizePercentage }}" }} of requests from the semantic cache.
        description: >-
          The semantic hit rate has stayed above {{ $a.homogeneousWorkload.hitRate }} for
          {{ $a.homogeneousWorkload.for }}. The task set may be too narrow (a benchmark or a client
          replaying the same prompts), or the similarity threshold too low; check the hit mix per
          tenant on the Hermes Cache dashboard and the evaluation numbers (`hermes-sidecar evaluate`).
    - alert: HermesCacheKVCacheSaturated
      # vLLM preempts and recomputes sequences when its KV cache is full: latency climbs and
      # prefix blocks are evicted before they can be reused.
      expr: |
        max by (namespace, policy, pod) (vllm:kv_cache_usage_perc) > {{ $a.kvCacheSaturation.usage }}
      for: {{ $a.kvCacheSaturation.for }}
      labels:
        severity: warning
        {{- with $pr.alertLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        summary: >-
          KV cache of {{ "{{ $labels.namespace }}/{{ $labels.pod }}" }} is {{ "{{ $value | humanizePercentage }}" }} full.
        description: >-
          vllm:kv_cache_usage_perc has stayed above {{ $a.kvCacheSaturation.usage }} for
          {{ $a.kvCacheSaturation.for }}. Add replicas (or let the autoscaler use the KV metric),
          lower engine.maxNumSeqs or engine.maxModelLen, or raise engine.gpuMemoryUtilization.
    - alert: HermesCacheQueueGrowing
      expr: |
        namespace_policy:vllm_num_requests_waiting:sum > {{ $a.queueGrowing.minWaiting }}
        and on (namespace, policy)
          deriv(namespace_policy:vllm_num_requests_waiting:sum[{{ $a.queueGrowing.for }}]) > 0
      for: {{ $a.queueGrowing.for }}
      labels:
        severity: warning
        {{- with $pr.alertLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        summary: >-
          {{ "{{ $value }}" }} requests wait in the vLLM queues of {{ "{{ $labels.namespace }}/{{ $labels.policy }}" }}, and the queue keeps growing.
        description: >-
          More than {{ $a.queueGrowing.minWaiting }} requests are waiting and the queue has grown for
          {{ $a.queueGrowing.for }}: arrivals exceed what the replicas serve. Scale the policy
          (`kubectl scale hcp {{ "{{ $labels.policy }}" }} -n {{ "{{ $labels.namespace }}" }} --replicas=N`) or check
          that its autoscaler reaches maxReplicas.
    - alert: HermesCacheSidecarFailingOpen
      # The sidecar passes requests through uncached when Redis or the embedder fails (fail-open):
      # users still get answers, but every one costs GPU time and the hit rate hides the cause.
      expr: |
        namespace_policy:hermes_cache_error_ratio:rate5m > {{ $a.sidecarFailOpen.errorRatio }}
      for: {{ $a.sidecarFailOpen.for }}
      labels:
        severity: warning
        {{- with $pr.alertLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        summary: >-
          Semantic cache of {{ "{{ $labels.namespace }}/{{ $labels.policy }}" }} is failing open for {{ "{{ $value | humanizePercentage }}" }} of lookups.
        description: >-
          hermes_cache_requests_total{result="error"} has been above {{ $a.sidecarFailOpen.errorRatio }}
          of lookups for {{ $a.sidecarFailOpen.for }}. The sidecar cannot reach Redis or its
          embedder; requests pass through to vLLM uncached. Check the sidecar logs and the Redis
          URL and password in the policy's spec.semanticCache.redis.
{{- end -}}
