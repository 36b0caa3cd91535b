{{/*
The chart name (app.kubernetes.io/name of the chart's own objects).
*/}}
{{- define "planboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: fullnameOverride, else <release>-<chart> (or <release> when it already
contains the chart name). Truncated to 63 characters (DNS label).
*/}}
{{- define "planboard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the operator's Deployment (and default ServiceAccount name).
*/}}
{{- define "planboard.operatorName" -}}
{{- printf "%s-operator" (include "planboard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of cluster-scoped objects: they must not collide between releases of the same
name in different namespaces, so the namespace is part of it.
*/}}
{{- define "planboard.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "planboard.operatorName" .) }}
{{- end }}

{{/*
chart label value: <chart>-<version>
*/}}
{{- define "planboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the operator's Deployment: only name and instance (immutable in a
Deployment selector, so never a version or anything that could change). The operator's
name is "<chart>-operator" so that its selector never overlaps the Pods of a Planboard
named like the release (those are app.kubernetes.io/name=planboard, instance=<cr-name>).
*/}}
{{- define "planboard.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-operator" (include "planboard.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The recommended labels of every object the chart renders. Pass a dict with "ctx" (the
root context), "component" and, for the operator's objects, "operator": true.
*/}}
{{- define "planboard.labels" -}}
{{- $ctx := .ctx -}}
helm.sh/chart: {{ include "planboard.chart" $ctx }}
{{- if .operator }}
{{ include "planboard.operatorSelectorLabels" $ctx }}
{{- else }}
app.kubernetes.io/name: {{ include "planboard.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
{{- end }}
app.kubernetes.io/version: {{ include "planboard.imageTag" $ctx | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: planboard
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The image tag (image.tag, else the chart's appVersion).
*/}}
{{- define "planboard.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The image reference repository:tag.
*/}}
{{- define "planboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "planboard.imageTag" .) }}
{{- end }}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "planboard.serviceAccountName" -}}
{{- default (include "planboard.operatorName" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
The Planboard resource's name (stack.name, else the full name), at most 30 characters
(the CRD's limit, so that `<name>-worker-<group>` stays a DNS label).
*/}}
{{- define "planboard.stackName" -}}
{{- default (include "planboard.fullname" .) .Values.stack.name | trunc 30 | trimSuffix "-" }}
{{- end }}

{{/*
The Secret name a secret reference uses: its own name, else stack.secret.name.
*/}}
{{- define "planboard.secretRefName" -}}
{{- default .root.Values.stack.secret.name .ref.name }}
{{- end }}
