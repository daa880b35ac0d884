{{/* Chart name, overridable. */}}
{{- define "proglog.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name of every object: <release>-proglog unless the
release name already says proglog. Kept to 53 characters so that
"-headless" still fits a DNS label. */}}
{{- define "proglog.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 53 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 53 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 53 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The headless Service the StatefulSet names: it gives every pod its
stable DNS name <pod>.<headless>.<namespace>.svc.<clusterDomain>. */}}
{{- define "proglog.headless" -}}
{{- printf "%s-headless" (include "proglog.fullname" .) -}}
{{- end -}}

{{/* The DNS suffix shared by every pod of this release. */}}
{{- define "proglog.peerDomain" -}}
{{- printf "%s.%s.svc.%s" (include "proglog.headless" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* --join: every pod's gossip address by its stable name (a node skips
its own address, so one list serves every pod). */}}
{{- define "proglog.join" -}}
{{- $fullname := include "proglog.fullname" . -}}
{{- $domain := include "proglog.peerDomain" . -}}
{{- $port := .Values.ports.gossip -}}
{{- $seeds := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $seeds = append $seeds (printf "%s-%d.%s:%v" $fullname $i $domain $port) -}}
{{- end -}}
{{- join "," $seeds -}}
{{- end -}}

{{- define "proglog.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "proglog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "proglog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "proglog.labels" -}}
helm.sh/chart: {{ include "proglog.chart" . }}
{{ include "proglog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "proglog.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "proglog.gossipSecret" -}}
{{- default (printf "%s-gossip" (include "proglog.fullname" .)) .Values.gossipKey.existingSecret -}}
{{- end -}}

{{/* One TOML value. Helm reads every YAML number as a float, so whole
numbers are printed as integers (the agent's u64 keys refuse 1e+06). */}}
{{- define "proglog.tomlValue" -}}
{{- if kindIs "string" . -}}
{{- . | quote -}}
{{- else if kindIs "bool" . -}}
{{- . -}}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- if eq (float64 .) (floor .) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else -}}
{{- fail (printf "config: a %s cannot be written to the agent's TOML file" (kindOf .)) -}}
{{- end -}}
{{- end -}}

{{/* The agent's TOML file from .Values.config: top-level keys first,
then one table per section, keys sorted. */}}
{{- define "proglog.configToml" -}}
{{- $config := .Values.config -}}
{{- range $key := keys $config | sortAlpha -}}
{{- $value := get $config $key -}}
{{- if not (kindIs "map" $value) }}
{{ $key }} = {{ include "proglog.tomlValue" $value }}
{{- end -}}
{{- end -}}
{{- range $section := keys $config | sortAlpha -}}
{{- $table := get $config $section -}}
{{- if kindIs "map" $table }}

[{{ $section }}]
{{- range $key := keys $table | sortAlpha }}
{{ $key }} = {{ include "proglog.tomlValue" (get $table $key) }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Checks JSON schema cannot express; every template includes it. */}}
{{- define "proglog.validate" -}}
{{- $ports := list .Values.ports.rpc .Values.ports.gossip .Values.ports.metrics -}}
{{- if ne (len (uniq $ports)) 3 -}}
{{- fail (printf "ports: rpc, gossip and metrics must differ (got %v)" $ports) -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (ge (int .Values.podDisruptionBudget.maxUnavailable) (int .Values.replicas)) (gt (int .Values.replicas) 1) -}}
{{- fail "podDisruptionBudget.maxUnavailable must be below replicas (a majority must stay up)" -}}
{{- end -}}
{{- end -}}
