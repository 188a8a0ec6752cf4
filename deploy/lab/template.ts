// Router config templates of the rack lab (deploy/lab/templates, shown verbatim in docs/top-of-rack.md), pure:
// `{{name}}` is a value, and `{{#list}}` … `{{/list}}` repeats its lines once per item, whose fields it names.
type Scalar = string | number;
export type TemplateValues = Record<string, Scalar | Record<string, Scalar>[]>;

export function renderTemplate(template: string, values: TemplateValues): string {
  const blocks = template.replace(/^\{\{#(\w+)\}\}\n([\s\S]*?)^\{\{\/\1\}\}\n/gm, (_whole, name: string, body: string) => {
    const items = values[name];
    if (!Array.isArray(items)) throw new Error(`template: {{#${name}}} needs a list`);
    return items.map((item) => fill(body, { ...values, ...item })).join('');
  });
  return fill(blocks, values);
}

function fill(text: string, values: TemplateValues): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_whole, name: string) => {
    const value = values[name];
    if (value === undefined || Array.isArray(value)) throw new Error(`template: no value for {{${name}}}`);
    return String(value);
  });
}
