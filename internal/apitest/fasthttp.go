package apitest

import (
	"net/http"

	"github.com/valyala/fasthttp"
)

// DeferFast copies a fasthttp exchange for Default to check at Flush (see
// Spec.Defer): the request's caller may be timing it.
func DeferFast(req *fasthttp.Request, res *fasthttp.Response) {
	Default().Defer(fastExchange(req, res))
}

// CheckFast checks a fasthttp exchange with Default (see Spec.Check).
func CheckFast(req *fasthttp.Request, res *fasthttp.Response) error {
	return Default().Check(fastExchange(req, res))
}

func fastExchange(req *fasthttp.Request, res *fasthttp.Response) Exchange {
	x := Exchange{
		Method:     string(req.Header.Method()),
		Path:       string(req.RequestURI()),
		ReqHeader:  http.Header{},
		ReqBody:    append([]byte(nil), req.Body()...),
		Status:     res.StatusCode(),
		RespHeader: http.Header{},
		RespBody:   append([]byte(nil), res.Body()...),
	}
	for k, v := range req.Header.All() {
		x.ReqHeader.Add(string(k), string(v))
	}
	for k, v := range res.Header.All() {
		x.RespHeader.Add(string(k), string(v))
	}
	return x
}
