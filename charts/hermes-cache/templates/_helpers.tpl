{{/*
Names and labels shared by every template. Resource names are truncated at 63 characters
(the DNS label limit) with room for the component suffixes used below.
*/}}

{{/* Chart name, or nameOverride. */}}
{{- define "hermes-cache.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name prefix: fullnameOverride, else <release>-<name>, or just <release> when the release
name already contains the chart name (so `helm install hermes-cache ...` gives hermes-cache-*).
*/}}
{{- define "hermes-cache.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<suffix>, the fullname cut so the whole stays within 63 characters. */}}
{{- define "hermes-cache.componentName" -}}
{{- $ctx := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $prefix := include "hermes-cache.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $prefix $suffix -}}
{{- end -}}

{{- define "hermes-cache.operatorName" -}}
{{- include "hermes-cache.componentName" (list . "operator") -}}
{{- end -}}

{{- define "hermes-cache.redisName" -}}
{{- include "hermes-cache.componentName" (list . "redis") -}}
{{- end -}}

{{/* Chart label value: name-version, "+" is not allowed in label values. */}}
{{- define "hermes-cache.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. Call with (list $ "component"). */}}
{{- define "hermes-cache.labels" -}}
{{- $ctx := index . 0 -}}
{{ include "hermes-cache.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: hermes-cache
helm.sh/chart: {{ include "hermes-cache.chart" $ctx }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Immutable selector labels of a component. Call with (list $ "component"). */}}
{{- define "hermes-cache.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "hermes-cache.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The operator's ServiceAccount name. */}}
{{- define "hermes-cache.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hermes-cache.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* image reference from {repository, tag, digest}; tag defaults to the chart's appVersion. */}}
{{- define "hermes-cache.image" -}}
{{- $image := index . 0 -}}
{{- $defaultTag := index . 1 -}}
{{- $ref := printf "%s:%s" $image.repository (default $defaultTag $image.tag) -}}
{{- if $image.digest -}}
{{- $ref = printf "%s@%s" $ref $image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* Name of the Secret that holds the Redis password. */}}
{{- define "hermes-cache.redisSecretName" -}}
{{- default (include "hermes-cache.redisName" .) .Values.redis.auth.existingSecret -}}
{{- end -}}

{{/* In-cluster URL of the chart's Redis (without the password), shown in NOTES.txt. */}}
{{- define "hermes-cache.redisUrl" -}}
{{- printf "redis://%s.%s.svc:%v" (include "hermes-cache.redisName" .) .Release.Namespace .Values.redis.port -}}
{{- end -}}

{{/* The operator's image; also the default sidecar image. No public registry serves it yet. */}}
{{- define "hermes-cache.operatorImage" -}}
{{- $repo := required "operator.image.repository is required when operator.enabled: build the image (make image), push it to your registry and set operator.image.repository (docs/images.md), or install with operator.enabled=false to run the operator elsewhere" .Values.operator.image.repository -}}
{{- include "hermes-cache.image" (list .Values.operator.image .Chart.AppVersion) -}}
{{- end -}}
