{{/*
Shared names and labels. templates/rbac.yaml and templates/peering.yaml (owned by the operator
code) use kubeft.fullname, kubeft.labels, kubeft.serviceAccountName and kubeft.peeringName too.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "kubeft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: fullnameOverride, else the release name, plus the chart name unless
the release name already contains it. 52 characters, so that suffixes like "-operator" and
"-metrics" keep names within the 63 characters of a label value.
*/}}
{{- define "kubeft.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "kubeft.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "kubeft.labels" -}}
helm.sh/chart: {{ include "kubeft.chart" . }}
{{ include "kubeft.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubeft
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator pods; stable across upgrades. */}}
{{- define "kubeft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount: serviceAccount.name, else <fullname>-operator. */}}
{{- define "kubeft.serviceAccountName" -}}
{{- default (printf "%s-operator" (include "kubeft.fullname" .)) .Values.serviceAccount.name }}
{{- end }}

{{/* The kopf peering object: peering.name, else the full name. */}}
{{- define "kubeft.peeringName" -}}
{{- default (include "kubeft.fullname" .) .Values.peering.name }}
{{- end }}

{{/* repository:tag of an image values block; the tag defaults to the chart's appVersion. */}}
{{- define "kubeft.image" -}}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) }}
{{- end }}
