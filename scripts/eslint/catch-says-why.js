// A `catch` either uses the error (logs it, counts it, wraps it, rethrows it) or says in a comment
// why nothing is needed: `try … catch` blocks and promise `.catch(handler)` callbacks alike. No
// library rule checks this: no-empty sees only empty blocks, and no-unused-vars ignores a catch
// without a binding.

/** @type {import('eslint').Rule.RuleModule} */
export default {
  meta: {
    type: 'problem',
    docs: { description: 'a catch that ignores its error must say why in a comment' },
    messages: { why: 'this catch ignores the error: handle it (log, metric, rethrow) or say why in a comment' },
    schema: [],
  },
  create(context) {
    const source = context.sourceCode;
    const uses = (node) => source.getDeclaredVariables(node).some((v) => v.references.length > 0);
    const explained = (node, body) => [...source.getCommentsBefore(node), ...source.getCommentsInside(body)].length > 0;
    return {
      CatchClause(node) {
        if (node.param && uses(node)) return;
        if (!explained(node, node.body)) context.report({ node, messageId: 'why' });
      },
      CallExpression(node) {
        const callee = node.callee;
        if (
          callee.type !== 'MemberExpression' ||
          callee.property.type !== 'Identifier' ||
          callee.property.name !== 'catch'
        )
          return;
        const handler = node.arguments[0];
        if (!handler || (handler.type !== 'ArrowFunctionExpression' && handler.type !== 'FunctionExpression')) return;
        if (handler.params.length > 0 && uses(handler)) return;
        // A comment before the statement holding the call, within it, or right after it says why.
        let holder = node;
        // The statement that holds the call directly in a block (an `if` without braces included).
        while (
          holder.parent &&
          !(
            /(Statement|Declaration)$/.test(holder.type) &&
            ['BlockStatement', 'Program', 'StaticBlock'].includes(holder.parent.type)
          )
        )
          holder = holder.parent;
        const [from, to] = [holder.loc.start.line, node.loc.end.line];
        const line = source.getCommentsBefore(holder).concat(source.getCommentsInside(handler));
        const trailing = source.getCommentsAfter(node).filter((c) => c.loc.start.line === to);
        const lineAbove = source.getAllComments().filter((c) => c.loc.start.line >= from && c.loc.end.line <= to);
        if (line.length + trailing.length + lineAbove.length === 0) context.report({ node: handler, messageId: 'why' });
      },
    };
  },
};
