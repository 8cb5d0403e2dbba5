{{/*
Names and labels.
*/}}
{{- define "livedub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "livedub.fullname" -}}
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

{{- define "livedub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "livedub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "livedub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "livedub.labels" -}}
helm.sh/chart: {{ include "livedub.chart" . }}
{{ include "livedub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: livedub
{{- end -}}

{{/* Resource name of one stage: <fullname>-<stage> (stage names are at most 9 chars). */}}
{{- define "livedub.stageFullname" -}}
{{- printf "%s-%s" (include "livedub.fullname" .root | trunc 53 | trimSuffix "-") .stage.name -}}
{{- end -}}

{{- define "livedub.stageSelectorLabels" -}}
{{ include "livedub.selectorLabels" .root }}
app.kubernetes.io/component: {{ .stage.name }}
{{- end -}}

{{- define "livedub.stageLabels" -}}
{{ include "livedub.labels" .root }}
app.kubernetes.io/component: {{ .stage.name }}
livedub.io/device: {{ .stage.device | default "cpu" }}
{{- end -}}

{{- define "livedub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "livedub.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Application contract, checked against the code's topology (workers/topology.py) by
tests/deploy: each stage's main input topic (the one KEDA watches for lag) and its
consumer group (streams/app.py group_id: the prefix without trailing ".-_", then the stage).
*/}}
{{- define "livedub.stageInputTopic" -}}
{{- $inputs := dict "segment" "media.audio" "asr" "segments" "translate" "transcripts" "tts" "translations" "lipsync" "dubbed.speech" -}}
{{- printf "%s%s" .root.Values.topics.prefix (get $inputs .stage.name) -}}
{{- end -}}

{{- define "livedub.consumerGroup" -}}
{{- printf "%s-%s" (regexReplaceAll "[-._]+$" .root.Values.topics.prefix "" | default "livedub") .stage.name -}}
{{- end -}}

{{/* Image reference: {{ include "livedub.image" (dict "image" $img "root" $) }} */}}
{{- define "livedub.image" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (required "image tag missing" $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* The effective image dict of a stage. */}}
{{- define "livedub.stageImage" -}}
{{- $device := .stage.device | default "cpu" -}}
{{- $base := deepCopy (get .root.Values.images $device) -}}
{{- if not $base.tag -}}
{{- $_ := set $base "tag" (printf "%s-%s" .root.Chart.AppVersion $device) -}}
{{- end -}}
{{- $img := mergeOverwrite $base (.stage.image | default dict) -}}
{{- include "livedub.image" (dict "image" $img) -}}
{{- end -}}

{{- define "livedub.autoscalingEnabled" -}}
{{- $a := .stage.autoscaling | default dict -}}
{{- if hasKey $a "enabled" -}}
{{- if $a.enabled }}true{{ end -}}
{{- else if .root.Values.autoscaling.enabled -}}
true
{{- end -}}
{{- end -}}

{{/* Autoscaling bounds: minReplicas defaults to 1, maxReplicas to topics.partitions. */}}
{{- define "livedub.minReplicas" -}}
{{- $a := .stage.autoscaling | default dict -}}
{{- if hasKey $a "minReplicas" -}}{{ int $a.minReplicas }}{{- else -}}1{{- end -}}
{{- end -}}

{{- define "livedub.maxReplicas" -}}
{{- $a := .stage.autoscaling | default dict -}}
{{- if hasKey $a "maxReplicas" -}}{{ int $a.maxReplicas }}{{- else -}}{{ int .root.Values.topics.partitions }}{{- end -}}
{{- end -}}

{{- define "livedub.pdbEnabled" -}}
{{- $p := .stage.podDisruptionBudget | default dict -}}
{{- if hasKey $p "enabled" -}}
{{- if $p.enabled }}true{{ end -}}
{{- else if .root.Values.podDisruptionBudget.enabled -}}
true
{{- end -}}
{{- end -}}

{{/*
The Kafka principal of a role (a stage, or "topics" for the topics Job) when
kafka.sasl.principalPerStage: streams/acls.py principal(), the consumer group's name.
*/}}
{{- define "livedub.kafkaPrincipal" -}}
{{- printf "%s-%s" (regexReplaceAll "[-._]+$" .root.Values.topics.prefix "" | default "livedub") .role -}}
{{- end -}}

{{/* Key of the SASL password in kafka.sasl.existingSecret: `<principal>.password` per stage, else passwordKey. */}}
{{- define "livedub.saslPasswordKey" -}}
{{- if .root.Values.kafka.sasl.principalPerStage -}}
{{- printf "%s.password" (include "livedub.kafkaPrincipal" .) -}}
{{- else -}}
{{- .root.Values.kafka.sasl.passwordKey -}}
{{- end -}}
{{- end -}}

{{/*
Kafka and common env for workers and the topics job: {{ include "livedub.kafkaEnv" (dict "root" $ "role" "asr") }}.
*/}}
{{- define "livedub.kafkaEnv" -}}
{{- $root := .root -}}
{{- $k := $root.Values.kafka -}}
- name: LIVEDUB_KAFKA__BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: LIVEDUB_KAFKA__SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
- name: LIVEDUB_KAFKA__SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
{{- if $k.sasl.principalPerStage }}
- name: LIVEDUB_KAFKA__SASL_USERNAME
  value: {{ include "livedub.kafkaPrincipal" . | quote }}
{{- else if $k.sasl.usernameKey }}
- name: LIVEDUB_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.usernameKey }}
{{- else }}
- name: LIVEDUB_KAFKA__SASL_USERNAME
  value: {{ $k.sasl.username | quote }}
{{- end }}
- name: LIVEDUB_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret }}
      key: {{ include "livedub.saslPasswordKey" . }}
{{- end }}
{{- if and (hasSuffix "SSL" $k.securityProtocol) $k.tls.caSecret.name }}
- name: LIVEDUB_KAFKA__SSL_CAFILE
  value: {{ printf "%s/ca/%s" $k.tls.mountPath $k.tls.caSecret.key | quote }}
{{- end }}
{{- if and (hasSuffix "SSL" $k.securityProtocol) $k.tls.clientCertSecret.name }}
- name: LIVEDUB_KAFKA__SSL_CERTFILE
  value: {{ printf "%s/client/%s" $k.tls.mountPath $k.tls.clientCertSecret.certKey | quote }}
- name: LIVEDUB_KAFKA__SSL_KEYFILE
  value: {{ printf "%s/client/%s" $k.tls.mountPath $k.tls.clientCertSecret.keyKey | quote }}
{{- end }}
- name: LIVEDUB_SCHEMA_REGISTRY__URL
  value: {{ $root.Values.schemaRegistry.url | quote }}
- name: LIVEDUB_TOPICS__PREFIX
  value: {{ $root.Values.topics.prefix | quote }}
- name: LIVEDUB_TOPICS__PARTITIONS
  value: {{ $root.Values.topics.partitions | quote }}
{{- end -}}

{{/* Secret volumes with the Kafka TLS material (only what is configured). */}}
{{- define "livedub.kafkaTlsVolumes" -}}
{{- $k := .Values.kafka -}}
{{- if and (hasSuffix "SSL" $k.securityProtocol) $k.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ $k.tls.caSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $k.tls.caSecret.key }}
        path: {{ $k.tls.caSecret.key }}
{{- end }}
{{- if and (hasSuffix "SSL" $k.securityProtocol) $k.tls.clientCertSecret.name }}
- name: kafka-client-cert
  secret:
    secretName: {{ $k.tls.clientCertSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $k.tls.clientCertSecret.certKey }}
        path: {{ $k.tls.clientCertSecret.certKey }}
      - key: {{ $k.tls.clientCertSecret.keyKey }}
        path: {{ $k.tls.clientCertSecret.keyKey }}
{{- end }}
{{- end -}}

{{- define "livedub.kafkaTlsMounts" -}}
{{- $k := .Values.kafka -}}
{{- if and (hasSuffix "SSL" $k.securityProtocol) $k.tls.caSecret.name }}
- name: kafka-ca
  mountPath: {{ printf "%s/ca" $k.tls.mountPath }}
  readOnly: true
{{- end }}
{{- if and (hasSuffix "SSL" $k.securityProtocol) $k.tls.clientCertSecret.name }}
- name: kafka-client-cert
  mountPath: {{ printf "%s/client" $k.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
Cross-field checks that JSON schema cannot express. Included by every stage template
so `helm template`/`install` fails with a clear message.
*/}}
{{- define "livedub.validate" -}}
{{- $root := . -}}
{{- $seen := dict -}}
{{- $enabled := 0 -}}
{{- range $i, $stage := .Values.stages -}}
{{- if hasKey $seen $stage.name -}}
{{- fail (printf "stages: stage %q is listed more than once" $stage.name) -}}
{{- end -}}
{{- $_ := set $seen $stage.name true -}}
{{- if ne (toString $stage.enabled) "false" -}}
{{- $enabled = add1 $enabled -}}
{{- $ctx := dict "root" $root "stage" $stage -}}
{{- if include "livedub.autoscalingEnabled" $ctx -}}
{{- $max := int (include "livedub.maxReplicas" $ctx) -}}
{{- $min := int (include "livedub.minReplicas" $ctx) -}}
{{- if gt $max (int $root.Values.topics.partitions) -}}
{{- fail (printf "stages[%s].autoscaling.maxReplicas=%d exceeds topics.partitions=%d: a consumer group cannot use more consumers than its topic has partitions" $stage.name $max (int $root.Values.topics.partitions)) -}}
{{- end -}}
{{- if gt $min $max -}}
{{- fail (printf "stages[%s].autoscaling.minReplicas=%d is greater than maxReplicas=%d" $stage.name $min $max) -}}
{{- end -}}
{{- if and (not $root.Values.autoscaling.keda.enabled) (eq $min 0) -}}
{{- fail (printf "stages[%s].autoscaling.minReplicas=0 needs KEDA (autoscaling.keda.enabled=true); an HPA cannot scale to zero" $stage.name) -}}
{{- end -}}
{{- if and $root.Values.autoscaling.keda.enabled (not ($root.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject")) -}}
{{- fail "autoscaling.keda.enabled=true but the cluster has no keda.sh/v1alpha1 ScaledObject API: install KEDA, or set autoscaling.keda.enabled=false to use a CPU HPA (with helm template, pass --api-versions keda.sh/v1alpha1/ScaledObject)" -}}
{{- end -}}
{{- if and (not $root.Values.autoscaling.keda.enabled) (not (dig "requests" "cpu" "" ($stage.resources | default dict))) -}}
{{- fail (printf "stages[%s]: the CPU HPA (autoscaling.keda.enabled=false) needs resources.requests.cpu" $stage.name) -}}
{{- end -}}
{{- else -}}
{{- if gt (int ($stage.replicas | default 1)) (int $root.Values.topics.partitions) -}}
{{- fail (printf "stages[%s].replicas=%d exceeds topics.partitions=%d" $stage.name (int $stage.replicas) (int $root.Values.topics.partitions)) -}}
{{- end -}}
{{- end -}}
{{- $grace := int ($stage.terminationGracePeriodSeconds | default $root.Values.shutdown.terminationGracePeriodSeconds) -}}
{{- if ge (int $root.Values.shutdown.preStopSleepSeconds) $grace -}}
{{- fail (printf "stages[%s]: shutdown.preStopSleepSeconds=%d must be smaller than terminationGracePeriodSeconds=%d, or the worker gets no time to drain and commit offsets" $stage.name (int $root.Values.shutdown.preStopSleepSeconds) $grace) -}}
{{- end -}}
{{- $secretish := "(?i)(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY)" -}}
{{- range $name, $_ := ($stage.env | default dict) -}}
{{- if regexMatch $secretish $name -}}
{{- fail (printf "stages[%s].env.%s looks like a secret: plain values end up in the Deployment spec; use extraEnv with valueFrom.secretKeyRef to an existing Secret" $stage.name $name) -}}
{{- end -}}
{{- end -}}
{{- range $e := concat ($stage.extraEnv | default list) (ternary $root.Values.models.initContainer.env list $root.Values.models.initContainer.enabled) -}}
{{- if and (regexMatch $secretish $e.name) (hasKey $e "value") -}}
{{- fail (printf "env %s looks like a secret: use valueFrom.secretKeyRef to an existing Secret instead of a plain value" $e.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $e := .Values.extraEnv -}}
{{- if and (regexMatch "(?i)(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY)" $e.name) (hasKey $e "value") -}}
{{- fail (printf "extraEnv %s looks like a secret: use valueFrom.secretKeyRef to an existing Secret instead of a plain value" $e.name) -}}
{{- end -}}
{{- end -}}
{{- if eq $enabled 0 -}}
{{- fail "stages: no stage is enabled" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) -}}
{{- fail "metrics.serviceMonitor.enabled=true but the cluster has no monitoring.coreos.com/v1 ServiceMonitor API (Prometheus Operator); disable it or pass --api-versions monitoring.coreos.com/v1/ServiceMonitor" -}}
{{- end -}}
{{- if and .Values.metrics.prometheusRule.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule")) -}}
{{- fail "metrics.prometheusRule.enabled=true but the cluster has no monitoring.coreos.com/v1 PrometheusRule API (Prometheus Operator); disable it or pass --api-versions monitoring.coreos.com/v1/PrometheusRule" -}}
{{- end -}}
{{- if and (eq .Values.models.source "pvc") (not .Values.models.pvc.existingClaim) -}}
{{- fail "models.source=pvc needs models.pvc.existingClaim (a PVC pre-populated with the model weights)" -}}
{{- end -}}
{{- include "livedub.validateBot" . -}}
{{- end -}}

{{/*
The live-call bot's checks, only when it is enabled (a disabled bot's values are never used,
so the schema keeps them loose and these checks name the value to set).
*/}}
{{- define "livedub.validateBot" -}}
{{- $bot := .Values.bot -}}
{{- if $bot.enabled -}}
{{- if not $bot.livekit.url -}}
{{- fail "bot.enabled=true needs bot.livekit.url: the LiveKit server's WebSocket URL, e.g. ws://livekit.livekit.svc:7880" -}}
{{- end -}}
{{- if not $bot.livekit.existingSecret -}}
{{- fail (printf "bot.enabled=true needs bot.livekit.existingSecret: an existing Secret with the LiveKit API key under key %q (bot.livekit.apiKeyKey) and the API secret under key %q (bot.livekit.apiSecretKey)" $bot.livekit.apiKeyKey $bot.livekit.apiSecretKey) -}}
{{- end -}}
{{- if not (has $bot.transport (list "embedded" "kafka")) -}}
{{- fail (printf "bot.transport must be embedded or kafka, not %q" (toString $bot.transport)) -}}
{{- end -}}
{{- if not $bot.to -}}
{{- fail "bot.to must list at least one target language, e.g. [es] or [es, fr]" -}}
{{- end -}}
{{- if and (eq $bot.transport "kafka") (hasPrefix "SASL_" .Values.kafka.securityProtocol) .Values.kafka.sasl.principalPerStage -}}
{{- fail "bot.transport=kafka with kafka.sasl.principalPerStage=true: `livedub acls` creates no principal for the call bot (it writes the media topics and reads the dubbed ones); use bot.transport=embedded or a shared SASL user" -}}
{{- end -}}
{{- if ge (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.terminationGracePeriodSeconds) -}}
{{- fail (printf "bot: shutdown.preStopSleepSeconds=%d must be smaller than shutdown.terminationGracePeriodSeconds=%d, or the bot gets no time to leave its rooms" (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- range $e := ($bot.extraEnv | default list) -}}
{{- if and (regexMatch "(?i)(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY)" $e.name) (hasKey $e "value") -}}
{{- fail (printf "bot.extraEnv %s looks like a secret: use valueFrom.secretKeyRef to an existing Secret instead of a plain value" $e.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The bot as a stage-shaped dict (name "bot" plus its values: device, image, gpuCount, placement
overrides), so the stage helpers (names, labels, image) serve it too:
{{ $ctx := dict "root" $ "stage" (include "livedub.botStage" $ | fromYaml) }}
*/}}
{{- define "livedub.botStage" -}}
{{- toYaml (merge (dict "name" "bot") (deepCopy .Values.bot)) -}}
{{- end -}}
