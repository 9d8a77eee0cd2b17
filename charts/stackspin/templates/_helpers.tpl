{{- define "stackspin.labels" -}}
app.kubernetes.io/name: stackspin
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "stackspin.selector" -}}
app.kubernetes.io/name: stackspin
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
