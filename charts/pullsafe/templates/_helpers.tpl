{{/* Labels on every object: the kustomize base's, plus Helm's own. */}}
{{- define "pullsafe.labels" -}}
app.kubernetes.io/name: pullsafe
app.kubernetes.io/part-of: pullsafe
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The image: repository:tag, or repository:tag@digest when a digest is set. */}}
{{- define "pullsafe.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else -}}
{{ printf "%s:%s" .Values.image.repository $tag }}
{{- end -}}
{{- end }}
