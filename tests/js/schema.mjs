// A small validator for the parts of JSON Schema (OpenAPI 3.0/3.1 flavour) that
// OpenAI's openapi.yaml uses in its response schemas: $ref, type (a name or a
// list, with "null"), nullable, enum, const, required, properties,
// additionalProperties, items, allOf, anyOf, oneOf, minimum/maximum. Formats
// and descriptions are ignored. Enough to say whether a response has every
// required field with the right type, which is what the tests need.
//
//   const v = new SchemaSet(componentsSchemas);
//   const errors = v.validate(value, 'CreateChatCompletionResponse');  // [] when valid

export class SchemaSet {
    constructor(schemas) {
        this.schemas = schemas;
    }

    resolve(ref) {
        const prefix = '#/components/schemas/';
        if (!ref.startsWith(prefix)) throw new Error(`unsupported $ref ${ref}`);
        const s = this.schemas[ref.slice(prefix.length)];
        if (!s) throw new Error(`unknown schema ${ref}`);
        return s;
    }

    // Returns a list of "path: problem" strings; empty when value fits.
    validate(value, nameOrSchema, path = '$') {
        const schema = typeof nameOrSchema === 'string' ? this.resolve(`#/components/schemas/${nameOrSchema}`)
            : nameOrSchema;
        const errors = [];
        this.walk(value, schema, path, errors, 0);
        return errors;
    }

    walk(v, s, path, errors, depth) {
        if (depth > 64) {
            errors.push(`${path}: schema nesting too deep`);
            return;
        }
        if (s === true || s === undefined || s === null) return;
        if (s === false) {
            errors.push(`${path}: no value is allowed here`);
            return;
        }
        if (s.$ref) {
            this.walk(v, this.resolve(s.$ref), path, errors, depth + 1);
            // siblings of $ref (3.1 allows them) are checked below as well
        }
        if (v === null && s.nullable === true) return;
        if (s.allOf) for (const sub of s.allOf) this.walk(v, sub, path, errors, depth + 1);
        for (const key of ['anyOf', 'oneOf']) {
            if (!s[key]) continue;
            // oneOf is checked as anyOf: OpenAI's unions overlap (a string enum and a
            // free string), so "exactly one" would reject valid bodies.
            let best = null;
            for (const sub of s[key]) {
                const e = [];
                this.walk(v, sub, path, e, depth + 1);
                if (e.length === 0) {
                    best = null;
                    break;
                }
                if (!best || e.length < best.length) best = e;
            }
            if (best) errors.push(`${path}: matches none of ${key} (closest: ${best.slice(0, 3).join('; ')})`);
        }
        if (s.type !== undefined) {
            const types = Array.isArray(s.type) ? s.type : [s.type];
            if (s.nullable === true) types.push('null');
            if (!types.some((t) => typeOk(v, t))) {
                errors.push(`${path}: is ${describe(v)}, want ${types.join(' or ')}`);
                return;
            }
        }
        if (s.enum && !s.enum.some((e) => e === v)) {
            errors.push(`${path}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
        }
        if ('const' in s && s.const !== v) errors.push(`${path}: ${JSON.stringify(v)} is not ${JSON.stringify(s.const)}`);
        if (typeof v === 'number') {
            if (typeof s.minimum === 'number' && v < s.minimum) errors.push(`${path}: ${v} < minimum ${s.minimum}`);
            if (typeof s.maximum === 'number' && v > s.maximum) errors.push(`${path}: ${v} > maximum ${s.maximum}`);
        }
        if (v && typeof v === 'object' && !Array.isArray(v)) {
            for (const r of s.required || []) {
                if (!(r in v)) errors.push(`${path}: missing required field "${r}"`);
            }
            const props = s.properties || {};
            for (const [k, val] of Object.entries(v)) {
                if (k in props) this.walk(val, props[k], `${path}.${k}`, errors, depth + 1);
                else if (s.additionalProperties === false) errors.push(`${path}: unexpected field "${k}"`);
                else if (s.additionalProperties && typeof s.additionalProperties === 'object') {
                    this.walk(val, s.additionalProperties, `${path}.${k}`, errors, depth + 1);
                }
            }
        }
        if (Array.isArray(v) && s.items) {
            v.forEach((item, i) => this.walk(item, s.items, `${path}[${i}]`, errors, depth + 1));
        }
    }
}

function typeOk(v, t) {
    switch (t) {
    case 'null': return v === null;
    case 'string': return typeof v === 'string';
    case 'boolean': return typeof v === 'boolean';
    case 'integer': return Number.isInteger(v);
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'array': return Array.isArray(v);
    case 'object': return v !== null && typeof v === 'object' && !Array.isArray(v);
    default: return true;
    }
}

function describe(v) {
    if (v === null) return 'null';
    if (Array.isArray(v)) return 'an array';
    return `a ${typeof v} (${JSON.stringify(v).slice(0, 40)})`;
}
