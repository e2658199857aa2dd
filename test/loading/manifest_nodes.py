"""Hand-made manifest nodes (the JSON shape `loading.manifest` writes) for direct builder tests."""


def node(cls, attrs=None, params=None, buffers=None, children=None, tensors=None):
    return {'class': cls, 'global': f'test.{cls}', 'attrs': attrs or {}, 'params': params or {},
            'buffers': buffers or {}, 'tensors': tensors or {}, 'children': children or {}}


def conv(cls='Conv2d', weight=(8, 4, 3, 3), bias=True, **attrs):
    return node(cls, attrs=attrs, params={'weight': list(weight), 'bias': [weight[0]] if bias else None})
